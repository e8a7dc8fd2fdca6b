-- query: fit_run
-- The experiment and alpha of fit $f (no row: no such fit).
-- Parameters: $f BIGINT.
SELECT experiment, alpha FROM fit_runs WHERE fit_id = $f
