-- table macro: eval_scatter(fit, n)
-- Figure 5: a reproducible sample of n (eval model, target) pairs of a fit (the n smallest by a
-- hash of the pair), with the datamodel's prediction and the actual margin.
-- Parameters: fit BIGINT, n INTEGER.
-- Columns: model_id BIGINT, target_id INTEGER, predicted FLOAT, margin FLOAT.
CREATE OR REPLACE MACRO eval_scatter(fit, n) AS TABLE
SELECT p.model_id, p.target_id, p.predicted, y.margin
FROM eval_predictions AS p
JOIN margins AS y ON y.model_id = p.model_id AND y.example_id = p.target_id
WHERE p.fit_id = fit
ORDER BY hash(p.model_id, p.target_id)
LIMIT n;
