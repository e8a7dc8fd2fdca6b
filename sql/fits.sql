-- view: fits
-- One row per (fit, target, lambda) of the path; `selected` marks the lambda chosen on
-- validation models, whose row describes the refit on fit+val models (paper appendix E.1).
-- A fit of attribution scores (`ingest scores`, `attribute`) has one selected row per target
-- whose `scale` is the calibration slope (weights = scale * scores). Files written before
-- `scale` existed read it as NULL.
-- Parameters: none.
-- Columns: fit_id, experiment, alpha, estimator, target_id, lam, bias, train_mse, val_mse, nnz,
--   selected, n_models, rel_gap, n_iter, converged, scale (see schemas/fits.json).
CREATE OR REPLACE VIEW fits AS
SELECT * FROM read_parquet(getvariable('dmstore_files_fits'), union_by_name = true);
