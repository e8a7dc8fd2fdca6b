-- query: report_comparison
-- The method table of a report: the estimator_comparison rows of fit $f and of the newest fit of
-- every other estimator or attribution method on the same experiment $e and alpha $a (every fit
-- there when $all), with the models each used: trained for it (an attribution method's
-- params.models_trained, as `dmstore attribute` records it, or an ingested one's --param n_models),
-- else its fit + val models.
-- Parameters: $f BIGINT, $e VARCHAR, $a DOUBLE, $all BOOLEAN, $est VARCHAR (fit $f's estimator).
SELECT c.*,
       coalesce(TRY_CAST(json_extract_string(r.params, '$.params.models_trained') AS BIGINT),
                TRY_CAST(json_extract_string(r.params, '$.params.n_models') AS BIGINT),
                r.n_fit + r.n_val) AS models_used,
       json_extract_string(r.params, '$.source') = 'scores' AS is_attribution
FROM estimator_comparison AS c
JOIN fit_runs AS r USING (fit_id)
WHERE c.experiment = $e AND c.alpha = $a
  AND ($all OR c.fit_id = $f OR c.fit_id IN (SELECT max(fit_id) FROM fit_runs
                                             WHERE experiment = $e AND alpha = $a AND estimator <> $est
                                             GROUP BY estimator))
ORDER BY c.fit_id
