-- query: by_train_rows_stored
-- by_train_rows read from `weights` alone, for a fit that stores only its selected weights
-- (fit_selected_only): no join with fits.
-- Parameters: $f BIGINT.
SELECT target_id, train_id, weight FROM weights
WHERE fit_id = $f
ORDER BY train_id, target_id
