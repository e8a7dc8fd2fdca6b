-- query: serve_leakage
-- Every test target of fit $f by leakage rank (leakage(f, 1)) with its top candidate and labels.
-- Parameters: $f BIGINT.
SELECT l.leakage_rank, l.target_id, et.label AS target_label, l.train_id, er.label AS train_label,
       l.weight, l.same_group
FROM leakage($f, 1) AS l
JOIN examples AS et ON et.example_id = l.target_id
JOIN examples AS er ON er.example_id = l.train_id
ORDER BY l.leakage_rank
