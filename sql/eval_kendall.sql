-- view: eval_kendall
-- Per (fit, target): Kendall's tau-b of the selected datamodel's predictions against the actual
-- outputs on the eval models (margins, or correctness for `*_correct` estimators), beside the
-- Spearman of eval_metrics (quanda reports both). Computed by the Python UDF kendall_tau
-- (scipy's tau-b, ties handled); NULL where either side is constant.
-- Parameters: none.
-- Columns: fit_id BIGINT, target_id INTEGER, kendall DOUBLE.
CREATE OR REPLACE VIEW eval_kendall AS
SELECT p.fit_id, p.target_id,
       kendall_tau(list(p.predicted::DOUBLE ORDER BY p.model_id),
                   list(CASE WHEN r.estimator LIKE '%\_correct' ESCAPE '\' THEN (y.margin > 0)::DOUBLE
                             ELSE y.margin::DOUBLE END ORDER BY p.model_id)) AS kendall
FROM margins AS y
JOIN eval_predictions AS p ON y.model_id = p.model_id AND y.example_id = p.target_id
JOIN fit_runs AS r ON r.fit_id = p.fit_id
GROUP BY p.fit_id, p.target_id;
