-- query: serve_target_counterfactuals
-- The retrained counterfactuals stored for target $t, every fit.
-- Parameters: $t INTEGER.
SELECT fit_id, selector, k, set_id, trials, predicted_effect, actual_effect, actual_std
FROM counterfactuals WHERE target_id = $t
ORDER BY fit_id, selector, k, set_id
