-- query: fit_estimators
-- Every fit id in fit_runs with its estimator, ascending (the fits an error lists).
SELECT fit_id, estimator FROM fit_runs ORDER BY fit_id
