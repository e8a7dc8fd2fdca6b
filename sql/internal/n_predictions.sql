-- query: n_predictions
-- How many eval predictions fit $f has.
-- Parameters: $f BIGINT.
SELECT count(*) FROM eval_predictions WHERE fit_id = $f
