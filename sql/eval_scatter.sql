-- table macro: eval_scatter(fit, n)
-- Figure 5: a reproducible sample of n (eval model, target) pairs of a fit (the n smallest by a
-- multiplicative hash of the pair, plain integer arithmetic so that every engine draws the same
-- sample), with the datamodel's prediction and the actual margin.
-- Parameters: fit BIGINT, n INTEGER.
-- Columns: model_id BIGINT, target_id INTEGER, predicted FLOAT, margin FLOAT.
CREATE OR REPLACE MACRO eval_scatter(fit, n) AS TABLE
SELECT p.model_id, p.target_id, p.predicted, y.margin
FROM eval_predictions AS p
JOIN margins AS y ON y.model_id = p.model_id AND y.example_id = p.target_id
WHERE p.fit_id = fit
ORDER BY (p.model_id * 2654435761 + CAST(p.target_id AS BIGINT) * 40503) % 4294967311,
         p.model_id, p.target_id
LIMIT n;
