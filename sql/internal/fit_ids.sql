-- query: fit_ids
-- Every fit id in fit_runs, ascending.
SELECT fit_id FROM fit_runs ORDER BY 1
