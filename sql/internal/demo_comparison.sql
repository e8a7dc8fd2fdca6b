-- query: demo_comparison
-- The demo's summary: held-out quality of the fits $ids.
-- Parameters: $ids BIGINT[].
SELECT estimator, n_eval_models, lds, pooled_pearson, auc FROM estimator_comparison
WHERE list_contains($ids, fit_id) ORDER BY fit_id
