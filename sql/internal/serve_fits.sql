-- query: serve_fits
-- The explorer's fit list: every fit_runs row with its held-out comparison (estimator_comparison)
-- and the models it used (as report_comparison counts them).
-- Parameters: none.
SELECT r.fit_id, r.experiment, r.alpha, r.estimator, r.n_fit, r.n_val, r.n_targets, r.wall_time_s,
       r.device,
       coalesce(TRY_CAST(json_extract_string(r.params, '$.params.models_trained') AS BIGINT),
                TRY_CAST(json_extract_string(r.params, '$.params.n_models') AS BIGINT),
                r.n_fit + r.n_val) AS models_used,
       coalesce(json_extract_string(r.params, '$.source') = 'scores', false) AS is_attribution,
       c.lds, c.lds_ci_lo, c.lds_ci_hi, c.n_lds, c.lds_common, c.n_common, c.kendall, c.mse, c.n_eval_models
FROM fit_runs AS r
LEFT JOIN estimator_comparison AS c USING (fit_id)
ORDER BY r.fit_id
