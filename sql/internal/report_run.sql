-- query: report_run
-- The fit_runs row of fit $f.
-- Parameters: $f BIGINT.
SELECT * FROM fit_runs WHERE fit_id = $f
