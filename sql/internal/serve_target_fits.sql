-- query: serve_target_fits
-- The fits that hold target $t: their selected row (lambda, bias, non-zero weights, val MSE).
-- Parameters: $t INTEGER.
SELECT fit_id, estimator, experiment, alpha, lam, bias, nnz, val_mse
FROM fits WHERE target_id = $t AND selected ORDER BY fit_id
