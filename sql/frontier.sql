-- table macro: frontier(experiment_name, alpha_value, train_s_per_model := NULL)
-- The cost-quality frontier (TRAK's figure 1; datamodels paper section 3.2): every fit of one
-- experiment and alpha with its held-out LDS (estimator_comparison) against the models it used
-- and the compute it cost. A regression fit (lasso, diff_means, ...; `dmstore fit --models N`
-- for a share of the models) used n_fit + n_val models, each costing train_s_per_model seconds
-- to train (`dmstore frontier` passes the rate the store's training commits recorded), plus its
-- fit time; an attribution method used the full-data models it trained (params.models_trained,
-- or an ingested method's --param n_models) and cost its recorded compute_seconds (models and
-- scores, as `dmstore attribute` records it, or an ingested method's --param compute_seconds)
-- plus its ingestion time.
-- Parameters: experiment_name VARCHAR, alpha_value DOUBLE, train_s_per_model DOUBLE (wall seconds to train one
--   model; NULL: train_s and compute_s of regression fits are NULL).
-- Columns: fit_id BIGINT, estimator VARCHAR, kind VARCHAR ('regression'|'attribution'), models_used BIGINT,
--   lds DOUBLE, lds_ci_lo DOUBLE, lds_ci_hi DOUBLE, n_lds BIGINT, lds_common DOUBLE, n_common BIGINT,
--   fit_s DOUBLE, train_s DOUBLE, compute_s DOUBLE (seconds).
CREATE OR REPLACE MACRO frontier(experiment_name, alpha_value, train_s_per_model := NULL) AS TABLE
WITH runs AS (
    SELECT r.fit_id, r.estimator, r.wall_time_s, r.n_fit + r.n_val AS fit_models,
           coalesce(json_extract_string(r.params, '$.source') IN ('scores', 'attribute'), false) AS attribution,
           TRY_CAST(json_extract_string(r.params, '$.params.models_trained') AS BIGINT) AS models_trained,
           TRY_CAST(json_extract_string(r.params, '$.params.n_models') AS BIGINT) AS n_models,
           TRY_CAST(json_extract_string(r.params, '$.params.compute_seconds') AS DOUBLE) AS method_s
    FROM fit_runs AS r
    WHERE r.experiment = experiment_name AND r.alpha = alpha_value
)
SELECT runs.fit_id, runs.estimator,
       CASE WHEN runs.attribution THEN 'attribution' ELSE 'regression' END AS kind,
       CASE WHEN runs.attribution THEN coalesce(runs.models_trained, runs.n_models, runs.fit_models)
            ELSE runs.fit_models END AS models_used,
       c.lds, c.lds_ci_lo, c.lds_ci_hi, c.n_lds, c.lds_common, c.n_common,
       runs.wall_time_s AS fit_s,
       CASE WHEN runs.attribution THEN runs.method_s
            ELSE runs.fit_models * train_s_per_model END AS train_s,
       runs.wall_time_s + CASE WHEN runs.attribution THEN coalesce(runs.method_s, 0)
                               ELSE runs.fit_models * train_s_per_model END AS compute_s
FROM runs
LEFT JOIN estimator_comparison AS c ON c.fit_id = runs.fit_id
ORDER BY kind DESC, runs.estimator, models_used, runs.fit_id;
