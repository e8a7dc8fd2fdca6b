-- query: serve_leakage
-- The $n test targets of fit $f most likely leaked (leakage rank 1 first) with their top candidate.
-- Parameters: $f BIGINT, $n INTEGER, $offset INTEGER.
SELECT l.leakage_rank, l.target_id, et.label AS target_label, l.train_id, er.label AS train_label,
       l.weight, l.same_group
FROM leakage($f, 1) AS l
JOIN examples AS et ON et.example_id = l.target_id
JOIN examples AS er ON er.example_id = l.train_id
ORDER BY l.leakage_rank
LIMIT $n OFFSET $offset
