-- table macro: dm_removal_effect(fit, removals, alpha := NULL)
-- Paper section 4.1.2 and appendix F.8: the predicted effect on each target of removing a set
-- R of training examples, from a table named by `removals` with columns (set_id, target_id,
-- train_id): predicted_effect = sum of the weights over R (the predicted drop in output from
-- training on the full set to training on it without R); vs_random_control = alpha times that
-- (the predicted drop relative to a random alpha-subset control, F.8; alpha defaults to the fit's).
-- Parameters: fit BIGINT, removals VARCHAR (a table or view name), alpha DOUBLE.
-- Columns: set_id, target_id, n_removed BIGINT, predicted_effect DOUBLE, vs_random_control DOUBLE.
CREATE OR REPLACE MACRO dm_removal_effect(fit, removals, alpha := NULL) AS TABLE
WITH r AS (SELECT set_id, target_id, train_id FROM query_table(removals)),
sel AS (SELECT target_id, lam FROM fits WHERE fit_id = fit AND selected),
hit AS (  -- weights first: DuckDB builds hash tables on the right side (the small inputs)
    SELECT r.set_id, r.target_id, w.weight
    FROM weights AS w
    JOIN r ON w.target_id = r.target_id AND w.train_id = r.train_id
    JOIN sel ON sel.target_id = w.target_id AND sel.lam = w.lam
    WHERE w.fit_id = fit
),
effect AS (SELECT set_id, target_id, sum(weight)::DOUBLE AS s FROM hit GROUP BY ALL),
sizes AS (SELECT set_id, target_id, count(*) AS n_removed FROM r GROUP BY ALL)
SELECT z.set_id, z.target_id, z.n_removed, coalesce(e.s, 0) AS predicted_effect,
       coalesce(e.s, 0) * coalesce(alpha, (SELECT any_value(fr.alpha) FROM fit_runs AS fr
                                           WHERE fr.fit_id = fit)) AS vs_random_control
FROM sizes AS z
LEFT JOIN effect AS e USING (set_id, target_id)
ORDER BY z.set_id, z.target_id;
