-- view: estimator_comparison
-- Table K.1 for every fit in the store: the eval_metrics of its targets averaged per fit
-- (lds = mean per-target Spearman), plus the Pearson correlation pooled over all
-- (model, target) pairs, with the numbers of eval models, masks and targets used.
-- Parameters: none.
-- Columns: fit_id, experiment, estimator, alpha, n_eval_models, n_masks, n_targets, lds,
--   pearson, pooled_pearson, mse, auc, lds_mask_avg, pearson_mask_avg, mse_mask_avg.
CREATE OR REPLACE VIEW estimator_comparison AS
WITH pooled AS (
    SELECT p.fit_id,
           corr(p.predicted, CASE WHEN r.estimator LIKE '%\_correct' ESCAPE '\' THEN (y.margin > 0)::DOUBLE
                                  ELSE y.margin END) AS pooled_pearson
    FROM eval_predictions AS p
    JOIN fit_runs AS r USING (fit_id)
    JOIN margins AS y ON y.model_id = p.model_id AND y.example_id = p.target_id
    GROUP BY p.fit_id
)
SELECT e.fit_id, r.experiment, e.estimator, e.alpha,
       max(e.n_models) AS n_eval_models, max(e.n_masks) AS n_masks, count(*) AS n_targets,
       avg(e.spearman) AS lds, avg(e.pearson) AS pearson, any_value(p.pooled_pearson) AS pooled_pearson,
       avg(e.mse) AS mse, avg(e.auc) AS auc,
       avg(e.spearman_mask_avg) AS lds_mask_avg, avg(e.pearson_mask_avg) AS pearson_mask_avg,
       avg(e.mse_mask_avg) AS mse_mask_avg
FROM eval_metrics AS e
JOIN fit_runs AS r USING (fit_id)
JOIN pooled AS p USING (fit_id)
GROUP BY e.fit_id, r.experiment, e.estimator, e.alpha
ORDER BY e.alpha, e.fit_id;
