-- query: demo_comparison
-- The demo's summary: held-out quality of the fits $ids, each average with its number of targets.
-- Parameters: $ids BIGINT[].
SELECT estimator, n_eval_models, lds, n_lds, n_targets, lds_common, n_common, pooled_pearson, auc, n_auc
FROM estimator_comparison
WHERE list_contains($ids, fit_id) ORDER BY fit_id
