-- query: by_train_rows
-- The selected weights of fit $f in train-major order: the rows of its weights_by_train copy
-- but fit_id and lam (constant per fit and per target: added by the writer, not sorted).
-- Parameters: $f BIGINT.
SELECT target_id, train_id, weight FROM datamodels
WHERE fit_id = $f
ORDER BY train_id, target_id
