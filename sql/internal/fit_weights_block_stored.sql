-- query: fit_weights_block_stored
-- The stored weights of fit $f for targets in [$lo, $hi]: its selected weights when
-- fit_selected_only holds (a block of a dense export without the join with fits).
-- Parameters: $f BIGINT, $lo, $hi INTEGER.
SELECT target_id, train_id, weight FROM weights
WHERE fit_id = $f AND target_id BETWEEN $lo AND $hi
