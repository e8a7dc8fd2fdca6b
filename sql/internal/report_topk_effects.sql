-- query: report_topk_effects
-- Figure F.4: for every fit of experiment $e and alpha $a with retrained counterfactuals, the
-- mean actual margin drop from removing its top-k examples (and k random ones) at each k.
-- Parameters: $e VARCHAR, $a DOUBLE.
SELECT r.estimator, c.fit_id, c.selector, c.k, avg(c.actual_effect) AS actual, count(*) AS n
FROM counterfactuals AS c
JOIN fit_runs AS r USING (fit_id)
WHERE r.experiment = $e AND r.alpha = $a AND c.selector IN ('top', 'random')
GROUP BY ALL
ORDER BY c.fit_id, c.selector, c.k
