-- query: fit_selected_lams
-- Per target of fit $f, ascending: the lambda of its selected datamodel and its non-zero count.
-- Parameters: $f BIGINT.
SELECT target_id, lam, nnz FROM fits
WHERE fit_id = $f AND selected
ORDER BY target_id
