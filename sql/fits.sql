-- view: fits
-- One row per (fit, target, lambda) of the path; `selected` marks the lambda chosen on
-- validation models, whose row describes the refit on fit+val models (paper appendix E.1).
-- Parameters: none.
-- Columns: fit_id, experiment, alpha, estimator, target_id, lam, bias, train_mse, val_mse, nnz,
--   selected, n_models, rel_gap, n_iter, converged (see schemas/fits.json).
CREATE OR REPLACE VIEW fits AS
SELECT * FROM read_parquet(getvariable('dmstore_files_fits'));
