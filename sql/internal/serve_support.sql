-- query: serve_support
-- The heuristic data support (data_support) of every target of fit $f, with the guided search's
-- support (support) where it ran.
-- Parameters: $f BIGINT.
SELECT d.target_id, d.expected_margin, d.support, d.top_weight_sum, s.support AS searched_support, s.certified
FROM data_support($f) AS d
LEFT JOIN support AS s ON s.fit_id = $f AND s.target_id = d.target_id
