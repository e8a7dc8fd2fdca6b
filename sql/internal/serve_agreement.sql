-- query: serve_agreement
-- Per target held by both fits $f and $g: the Pearson correlation of their selected weight
-- vectors over all d train examples (a weight a fit does not store is 0).
-- Parameters: $f BIGINT, $g BIGINT.
WITH both_t AS (
    SELECT target_id FROM fits WHERE fit_id = $f AND selected
    INTERSECT SELECT target_id FROM fits WHERE fit_id = $g AND selected
),
n AS (SELECT count(*)::DOUBLE AS d FROM examples WHERE split = 'train'),
a AS (SELECT target_id, train_id, weight::DOUBLE AS w FROM dm_weights($f) WHERE target_id IN (SELECT target_id FROM both_t)),
b AS (SELECT target_id, train_id, weight::DOUBLE AS w FROM dm_weights($g) WHERE target_id IN (SELECT target_id FROM both_t)),
j AS (
    SELECT coalesce(a.target_id, b.target_id) AS target_id, coalesce(a.w, 0) AS x, coalesce(b.w, 0) AS y
    FROM a FULL JOIN b ON a.target_id = b.target_id AND a.train_id = b.train_id
),
s AS (
    SELECT target_id, sum(x) AS sx, sum(y) AS sy, sum(x * x) AS sxx, sum(y * y) AS syy, sum(x * y) AS sxy
    FROM j GROUP BY target_id
)
SELECT s.target_id,
       (n.d * sxy - sx * sy) / sqrt(nullif((n.d * sxx - sx * sx) * (n.d * syy - sy * sy), 0)) AS agreement
FROM s, n
