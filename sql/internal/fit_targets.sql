-- query: fit_targets
-- The targets of fit $f, ascending.
-- Parameters: $f BIGINT.
SELECT DISTINCT target_id FROM fits WHERE fit_id = $f ORDER BY 1
