-- query: fit_weights_block
-- The selected weights of fit $f for targets in [$lo, $hi] (a block of a dense export).
-- Parameters: $f BIGINT, $lo, $hi INTEGER.
SELECT target_id, train_id, weight FROM datamodels
WHERE fit_id = $f AND target_id BETWEEN $lo AND $hi
