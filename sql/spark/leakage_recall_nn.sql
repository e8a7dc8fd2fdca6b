-- spark variant of table macro: leakage_recall_nn(fit, k)
-- Why: DuckDB uses list_distance, min_by(…, k) and list_contains; Spark computes the squared
-- Euclidean distance with zip_with/aggregate (same order) and ranks with row_number.
WITH targets AS (SELECT target_id FROM leakage_targets(:fit)),
dist AS (
    SELECT t.example_id AS target_id, r.group_key = t.group_key AS hit,
           row_number() OVER (
               PARTITION BY t.example_id
               ORDER BY aggregate(zip_with(t.features, r.features, (a, b) -> (a - b) * (a - b)),
                                  CAST(0 AS DOUBLE), (acc, x) -> acc + x)) AS rn
    FROM examples AS t CROSS JOIN examples AS r
    WHERE t.example_id IN (SELECT target_id FROM targets) AND r.split = 'train'
),
nn AS (SELECT target_id, bool_or(hit) AS hits FROM dist WHERE rn <= :k GROUP BY target_id)
SELECT 'nearest_neighbor' AS method, CAST(:k AS INT) AS k, (SELECT count(*) FROM targets) AS n_targets,
       count_if(hits) / CAST(nullif((SELECT count(*) FROM targets), 0) AS DOUBLE) AS recall
FROM nn
