-- query: fit_weights
-- Every selected weight of fit $f (for a dense weight matrix).
-- Parameters: $f BIGINT.
SELECT target_id, train_id, weight FROM datamodels WHERE fit_id = $f
