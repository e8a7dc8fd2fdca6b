-- view: eval_metrics
-- Per (fit, target): how well the selected datamodel predicts held-out (role 'eval') models
-- (paper section 3.2, Table K.1). The actual output is the margin, or correctness (margin > 0)
-- for estimators on correctness (`*_correct`). Ranks are average ranks (ties share them).
--   spearman: rank correlation of predicted vs actual (its mean over targets is the LDS)
--   pearson, mse: of predicted vs actual
--   auc: AUC of the prediction as a score for correctness (margin > 0); null when all agree
--   correlations are null where either side is constant (e.g. a target always classified right)
--   *_mask_avg: the same against actual outputs averaged over models sharing a mask_id (computed
--   only for fits whose eval models repeat masks; equal to the plain metrics otherwise)
-- Parameters: none.
-- Columns: fit_id, estimator, alpha, target_id, n_models, n_masks, spearman, pearson, mse, auc,
--   spearman_mask_avg, pearson_mask_avg, mse_mask_avg.
CREATE OR REPLACE VIEW eval_metrics AS
WITH joined AS (
    SELECT p.fit_id, p.target_id, m.mask_id,
           p.predicted::DOUBLE AS predicted,
           CASE WHEN r.estimator LIKE '%\_correct' ESCAPE '\' THEN (y.margin > 0)::DOUBLE
                ELSE y.margin::DOUBLE END AS actual,
           (y.margin > 0)::INTEGER AS correct
    FROM margins AS y   -- DuckDB builds the hash table on the right: the (smaller) predictions
    JOIN eval_predictions AS p ON y.model_id = p.model_id AND y.example_id = p.target_id
    JOIN fit_runs AS r ON r.fit_id = p.fit_id
    JOIN models AS m ON m.model_id = p.model_id
),
repeats AS (  -- fits whose eval models share masks
    SELECT r.fit_id
    FROM fit_runs AS r
    JOIN models AS m ON m.experiment = r.experiment AND m.alpha = r.alpha AND m.role = 'eval'
    GROUP BY r.fit_id
    HAVING count(*) > count(DISTINCT m.mask_id)
),
-- one row per unit: a model (lvl 0), or a mask (lvl 1: outputs of its models averaged); same
-- metrics for both
units AS (
    SELECT 0 AS lvl, fit_id, target_id, mask_id, predicted, actual, correct FROM joined
    UNION ALL
    SELECT 1, fit_id, target_id, mask_id, avg(predicted), avg(actual), NULL
    FROM joined
    WHERE fit_id IN (SELECT fit_id FROM repeats)
    GROUP BY fit_id, target_id, mask_id
),
keyed AS (  -- one integer key per group (fit ids < 2^30): cheaper to hash and sort than three columns
    SELECT *, (fit_id::BIGINT << 33) | (lvl::BIGINT << 32) | target_id::BIGINT AS grp FROM units
),
sizes AS (SELECT grp, count(*) AS n_part FROM keyed GROUP BY grp),
counted AS (  -- group sizes by a join: cheaper than a third window
    SELECT u.*, s.n_part FROM keyed AS u JOIN sizes AS s USING (grp)
),
ranked AS (  -- average ranks from one sort per ordering: (rank() + cume_dist()·n) / 2
    SELECT lvl, fit_id, target_id, mask_id, predicted, actual, correct,
        (rank() OVER wp + round(cume_dist() OVER wp * n_part)) / 2.0 AS rank_pred,
        (rank() OVER wa + round(cume_dist() OVER wa * n_part)) / 2.0 AS rank_actual
    FROM counted
    WINDOW wp AS (PARTITION BY grp ORDER BY predicted),
           wa AS (PARTITION BY grp ORDER BY actual)
),
metrics AS (
    SELECT lvl, fit_id, target_id,
           count(*) AS n_units,
           nullif(corr(rank_pred, rank_actual), 'nan'::DOUBLE) AS spearman,
           nullif(corr(predicted, actual), 'nan'::DOUBLE) AS pearson,
           avg((predicted - actual) ** 2) AS mse,
           (sum(rank_pred) FILTER (correct = 1) - sum(correct) * (sum(correct) + 1) / 2.0)
               / nullif(sum(correct) * (count(*) - sum(correct)), 0) AS auc
    FROM ranked
    GROUP BY lvl, fit_id, target_id
)
SELECT m.fit_id, r.estimator, r.alpha, m.target_id, m.n_units AS n_models,
       CASE WHEN k.fit_id IS NULL THEN m.n_units ELSE k.n_units END AS n_masks,
       m.spearman, m.pearson, m.mse, m.auc,
       CASE WHEN k.fit_id IS NULL THEN m.spearman ELSE k.spearman END AS spearman_mask_avg,
       CASE WHEN k.fit_id IS NULL THEN m.pearson ELSE k.pearson END AS pearson_mask_avg,
       CASE WHEN k.fit_id IS NULL THEN m.mse ELSE k.mse END AS mse_mask_avg
FROM metrics AS m
JOIN fit_runs AS r USING (fit_id)
LEFT JOIN metrics AS k ON k.lvl = 1 AND k.fit_id = m.fit_id AND k.target_id = m.target_id
WHERE m.lvl = 0;
