-- query: serve_example_by_train
-- Training example $i: the $k targets whose selected datamodels give it the largest positive and
-- the most negative weights, per fit of $fits, read from their train-major copies (the row groups
-- whose train_id statistics admit $i: no scan of the fits).
-- Parameters: $i INTEGER, $k INTEGER, $fits BIGINT[].
WITH ranked AS (
    SELECT fit_id, target_id, weight,
           row_number() OVER (PARTITION BY fit_id, weight > 0 ORDER BY abs(weight) DESC, target_id) AS rank
    FROM weights_by_train
    WHERE train_id = $i AND list_contains($fits, fit_id) AND weight <> 0
)
SELECT r.fit_id, CASE WHEN r.weight > 0 THEN 'positive' ELSE 'negative' END AS direction, r.rank,
       r.target_id, r.weight, e.label AS target_label
FROM ranked AS r JOIN examples AS e ON e.example_id = r.target_id
WHERE r.rank <= $k
ORDER BY r.fit_id, direction DESC, r.rank
