-- query: target_weights
-- The selected datamodel of target $t in fit $f: its non-zero weights.
-- Parameters: $f BIGINT, $t INTEGER.
SELECT train_id, weight FROM dm_weights($f) WHERE target_id = $t
