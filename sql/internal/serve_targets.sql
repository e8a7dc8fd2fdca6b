-- query: serve_targets
-- The targets of fit $f with their held-out LDS (eval_metrics), heuristic data support
-- (data_support) and, when $g is a fit, the Pearson correlation of the two fits' weight vectors
-- over all d train examples (absent weights are 0), ordered by $order: 'lds' (worst first),
-- 'support' (smallest first), 'disagreement' (least correlated first) or 'id'.
-- Parameters: $f BIGINT, $g BIGINT (or NULL), $order VARCHAR, $n INTEGER, $offset INTEGER.
WITH t AS (SELECT target_id FROM fits WHERE fit_id = $f AND selected),
n AS (SELECT count(*)::DOUBLE AS d FROM examples WHERE split = 'train'),
a AS (SELECT target_id, train_id, weight::DOUBLE AS w FROM dm_weights($f)),
b AS (SELECT target_id, train_id, weight::DOUBLE AS w FROM dm_weights($g)
      WHERE target_id IN (SELECT target_id FROM t)),
both_t AS (SELECT target_id FROM t WHERE target_id IN (SELECT target_id FROM fits WHERE fit_id = $g AND selected)),
j AS (
    SELECT coalesce(a.target_id, b.target_id) AS target_id, coalesce(a.w, 0) AS x, coalesce(b.w, 0) AS y
    FROM a FULL JOIN b ON a.target_id = b.target_id AND a.train_id = b.train_id
),
s AS (
    SELECT target_id, sum(x) AS sx, sum(y) AS sy, sum(x * x) AS sxx, sum(y * y) AS syy, sum(x * y) AS sxy
    FROM j WHERE target_id IN (SELECT target_id FROM both_t) GROUP BY target_id
),
agree AS (
    SELECT s.target_id,
           (n.d * sxy - sx * sy) / sqrt(nullif((n.d * sxx - sx * sx) * (n.d * syy - sy * sy), 0)) AS corr
    FROM s, n
),
rows AS (
    SELECT t.target_id, e.label, m.spearman AS lds, ds.support, ds.expected_margin, agree.corr AS agreement
    FROM t
    JOIN examples AS e ON e.example_id = t.target_id
    LEFT JOIN eval_metrics AS m ON m.fit_id = $f AND m.target_id = t.target_id
    LEFT JOIN data_support($f) AS ds ON ds.target_id = t.target_id
    LEFT JOIN agree ON agree.target_id = t.target_id
)
SELECT *, count(*) OVER () AS total FROM rows
ORDER BY CASE $order WHEN 'lds' THEN lds WHEN 'support' THEN support::DOUBLE
                     WHEN 'disagreement' THEN agreement ELSE target_id::DOUBLE END ASC NULLS LAST,
         target_id
LIMIT $n OFFSET $offset
