-- spark variant of table macro: topk_neighbors(fit, k, lam := NULL)
-- Why: DuckDB takes the top k per target in one pass with max_by(…, k) and unnests the lists;
-- Spark's max_by has no k, so each direction is ranked with row_number (ties broken by train_id).
WITH w AS (SELECT target_id, train_id, weight FROM dm_weights(:fit, :lam)),
ranked AS (
    SELECT target_id, train_id, weight,
           CASE WHEN weight > 0 THEN 'positive' ELSE 'negative' END AS direction,
           row_number() OVER (PARTITION BY target_id, weight > 0 ORDER BY abs(weight) DESC, train_id) AS rank
    FROM w
    WHERE weight <> 0
)
SELECT r.target_id, et.label AS target_label, r.direction, r.rank, r.train_id, r.weight,
       er.label AS train_label
FROM ranked AS r
JOIN examples AS et ON et.example_id = r.target_id
JOIN examples AS er ON er.example_id = r.train_id
WHERE r.rank <= :k
ORDER BY r.target_id, r.direction DESC, r.rank
