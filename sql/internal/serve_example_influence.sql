-- query: serve_example_influence
-- Training example $i: the $k targets whose selected datamodels give it the largest positive and
-- the most negative weights, per fit.
-- Parameters: $i INTEGER, $k INTEGER, $fits BIGINT[] (the fits to scan).
WITH w AS (
    SELECT w.fit_id, w.target_id, w.weight
    FROM weights AS w
    JOIN fits AS f ON w.fit_id = f.fit_id AND w.target_id = f.target_id AND w.lam = f.lam
    WHERE w.train_id = $i AND f.selected AND list_contains($fits, w.fit_id)
), ranked AS (
    SELECT fit_id, target_id, weight,
           row_number() OVER (PARTITION BY fit_id, weight > 0 ORDER BY abs(weight) DESC, target_id) AS rank
    FROM w WHERE weight <> 0
)
SELECT r.fit_id, CASE WHEN r.weight > 0 THEN 'positive' ELSE 'negative' END AS direction, r.rank,
       r.target_id, r.weight, e.label AS target_label
FROM ranked AS r JOIN examples AS e ON e.example_id = r.target_id
WHERE r.rank <= $k
ORDER BY r.fit_id, direction DESC, r.rank
