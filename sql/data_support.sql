-- table macro: data_support(fit, lam := NULL)
-- Appendix F.3.2 heuristic: per target, the smallest k such that the sum of its k largest
-- datamodel weights reaches its expected margin (the mean margin of the target over the fit's
-- fit and val models); NULL when no k does. Targets with expected margin <= 0 (misclassified
-- on average already) get support 0.
-- Parameters: fit BIGINT, lam DOUBLE (NULL: the selected datamodels).
-- Columns: target_id INTEGER, expected_margin DOUBLE, support BIGINT, top_weight_sum DOUBLE.
CREATE OR REPLACE MACRO data_support(fit, lam := NULL) AS TABLE
WITH run AS (SELECT experiment, alpha FROM fit_runs WHERE fit_id = fit),
targets AS (SELECT DISTINCT target_id FROM fits WHERE fit_id = fit),
expected AS (
    SELECT y.example_id AS target_id, avg(y.margin)::DOUBLE AS expected_margin
    FROM margins AS y
    JOIN models AS m USING (model_id)
    JOIN run ON m.experiment = run.experiment AND m.alpha = run.alpha
    WHERE m.role IN ('fit', 'val') AND y.example_id IN (SELECT target_id FROM targets)
    GROUP BY y.example_id
),
cum AS (
    SELECT target_id,
           row_number() OVER (PARTITION BY target_id ORDER BY weight DESC, train_id) AS k,
           sum(weight) OVER (PARTITION BY target_id ORDER BY weight DESC, train_id
                             ROWS UNBOUNDED PRECEDING)::DOUBLE AS s
    FROM dm_weights(fit, lam := lam)
    WHERE weight > 0
)
SELECT e.target_id, e.expected_margin,
       CASE WHEN e.expected_margin <= 0 THEN 0
            ELSE min(c.k) FILTER (WHERE c.s >= e.expected_margin) END AS support,
       max(c.s) AS top_weight_sum
FROM expected AS e
LEFT JOIN cum AS c USING (target_id)
GROUP BY e.target_id, e.expected_margin
ORDER BY e.target_id;
