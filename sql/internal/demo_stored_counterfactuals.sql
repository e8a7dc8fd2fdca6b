-- query: demo_stored_counterfactuals
-- Counterfactuals an earlier `dmstore demo` stored for fit $f with these settings (a rerun
-- reuses them): trials $t, sizes $ks, over exactly $n targets.
-- Parameters: $f BIGINT, $t INTEGER, $ks INTEGER[], $n INTEGER.
SELECT predicted_effect, actual_effect FROM counterfactuals
WHERE fit_id = $f AND trials = $t AND selector IN ('top', 'bottom', 'random') AND list_contains($ks, k)
  AND (SELECT count(DISTINCT target_id) FROM counterfactuals
       WHERE fit_id = $f AND trials = $t AND selector IN ('top', 'bottom', 'random')) = $n
