-- query: removal_predictions
-- Predicted effects of the removal sets registered as _dm_removals, for fit $f.
-- Parameters: $f BIGINT.
SELECT set_id, target_id, predicted_effect FROM dm_removal_effect($f, '_dm_removals')
