-- query: report_counterfactuals
-- Figure 8: predicted and actual effects of fit $f's retrained removal sets.
-- Parameters: $f BIGINT.
SELECT selector, predicted_effect, actual_effect FROM counterfactuals WHERE fit_id = $f
