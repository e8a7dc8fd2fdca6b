-- view: fit_runs
-- One row per regression run: estimator, models used, solver settings, convergence, wall time.
-- Parameters: none.
-- Columns: see schemas/fit_runs.json.
CREATE OR REPLACE VIEW fit_runs AS
SELECT * FROM read_parquet(getvariable('dmstore_files_fit_runs'));
