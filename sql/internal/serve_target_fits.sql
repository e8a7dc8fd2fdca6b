-- query: serve_target_fits
-- The fits that hold target $t: their selected row (lam, bias, nnz, val MSE) and run.
-- Parameters: $t INTEGER.
SELECT f.fit_id, f.estimator, f.experiment, f.alpha, f.lam, f.bias, f.nnz, f.val_mse, m.spearman AS lds
FROM fits AS f
LEFT JOIN eval_metrics AS m ON m.fit_id = f.fit_id AND m.target_id = f.target_id
WHERE f.target_id = $t AND f.selected
ORDER BY f.fit_id
