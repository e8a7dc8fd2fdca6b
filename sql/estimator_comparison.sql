-- view: estimator_comparison
-- Table K.1 for every fit in the store (datamodels and ingested attribution methods alike): the
-- eval_metrics of its targets averaged per fit, each average with the number of targets it is
-- over, so that fits are compared like for like:
--   lds: mean per-target Spearman over the n_lds targets where it is defined (a target whose
--     outputs are constant on the eval models has none); lds_ci_lo/hi: its 95 % percentile
--     bootstrap interval over those targets (1,000 resamples, seed 0; UDF bootstrap_ci)
--   lds_common: the mean Spearman over the n_common targets that have one in every fit of the
--     same experiment and alpha (compare fits on this one)
--   kendall: mean per-target Kendall tau-b (eval_kendall) over n_kendall targets
--   pearson, mse, auc: means over n_pearson, n_targets and n_auc targets (auc: the prediction as
--     a score for correctness; defined where both classes occur)
--   pooled_pearson: the Pearson correlation over all (eval model, target) pairs at once
--   n_eval_models, n_masks: eval models, and distinct masks among them; *_mask_avg: the same
--     metrics against outputs averaged over the models that share a mask (equal to the plain
--     ones when no mask repeats)
-- Parameters: none.
-- Columns: fit_id, experiment, estimator, alpha, n_eval_models, n_masks, n_targets, lds, n_lds,
--   lds_ci_lo, lds_ci_hi, lds_common, n_common, kendall, n_kendall, pearson, n_pearson,
--   pooled_pearson, mse, auc, n_auc, lds_mask_avg, pearson_mask_avg, mse_mask_avg.
CREATE OR REPLACE VIEW estimator_comparison AS
WITH pooled AS (
    SELECT p.fit_id,
           corr(p.predicted, CASE WHEN r.estimator LIKE '%\_correct' ESCAPE '\' THEN (y.margin > 0)::DOUBLE
                                  ELSE y.margin END) AS pooled_pearson
    FROM eval_predictions AS p
    JOIN fit_runs AS r USING (fit_id)
    JOIN margins AS y ON y.model_id = p.model_id AND y.example_id = p.target_id
    GROUP BY p.fit_id
),
scored AS (
    SELECT e.*, r.experiment, k.kendall
    FROM eval_metrics AS e
    JOIN fit_runs AS r USING (fit_id)
    LEFT JOIN eval_kendall AS k ON k.fit_id = e.fit_id AND k.target_id = e.target_id
),
n_fits AS (SELECT experiment, alpha, count(DISTINCT fit_id) AS n FROM scored GROUP BY experiment, alpha),
common AS (  -- targets with an LDS in every fit of their experiment and alpha
    SELECT s.experiment, s.alpha, s.target_id
    FROM scored AS s
    JOIN n_fits AS f ON f.experiment = s.experiment AND f.alpha = s.alpha
    GROUP BY s.experiment, s.alpha, s.target_id, f.n
    HAVING count(s.spearman) = f.n
),
agg AS (
    SELECT s.fit_id, s.experiment, s.estimator, s.alpha,
           max(s.n_models) AS n_eval_models, max(s.n_masks) AS n_masks, count(*) AS n_targets,
           avg(s.spearman) AS lds, count(s.spearman) AS n_lds,
           bootstrap_ci(list(s.spearman), 0.95, 1000, 0) AS ci,
           avg(s.spearman) FILTER (WHERE c.target_id IS NOT NULL) AS lds_common,
           count(c.target_id) AS n_common,
           avg(s.kendall) AS kendall, count(s.kendall) AS n_kendall,
           avg(s.pearson) AS pearson, count(s.pearson) AS n_pearson,
           any_value(p.pooled_pearson) AS pooled_pearson,
           avg(s.mse) AS mse, avg(s.auc) AS auc, count(s.auc) AS n_auc,
           avg(s.spearman_mask_avg) AS lds_mask_avg, avg(s.pearson_mask_avg) AS pearson_mask_avg,
           avg(s.mse_mask_avg) AS mse_mask_avg
    FROM scored AS s
    JOIN pooled AS p USING (fit_id)
    LEFT JOIN common AS c ON c.experiment = s.experiment AND c.alpha = s.alpha AND c.target_id = s.target_id
    GROUP BY s.fit_id, s.experiment, s.estimator, s.alpha
)
SELECT fit_id, experiment, estimator, alpha, n_eval_models, n_masks, n_targets, lds, n_lds,
       ci.lo AS lds_ci_lo, ci.hi AS lds_ci_hi, lds_common, n_common, kendall, n_kendall, pearson,
       n_pearson, pooled_pearson, mse, auc, n_auc, lds_mask_avg, pearson_mask_avg, mse_mask_avg
FROM agg
ORDER BY alpha, fit_id;
