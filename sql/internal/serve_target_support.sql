-- query: serve_target_support
-- Target $t's heuristic data support (data_support) and guided-search support (support) in fit $f.
-- Parameters: $f BIGINT, $t INTEGER.
SELECT d.expected_margin, d.support, d.top_weight_sum, s.support AS searched_support, s.certified
FROM data_support($f) AS d
LEFT JOIN support AS s ON s.fit_id = $f AND s.target_id = d.target_id
WHERE d.target_id = $t
