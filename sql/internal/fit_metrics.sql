-- query: fit_metrics
-- The held-out metrics (eval_metrics) of fit $f, by target.
-- Parameters: $f BIGINT.
SELECT * FROM eval_metrics WHERE fit_id = $f ORDER BY target_id
