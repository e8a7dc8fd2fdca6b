-- spark variant of view: eval_kendall
-- Why: DuckDB pairs the two lists with list(… ORDER BY model_id); Spark's collect_list has no
-- order, so each side is a list of (model_id, value) structs, sorted, then projected.
SELECT p.fit_id, p.target_id,
       kendall_tau(
           transform(sort_array(collect_list(struct(p.model_id AS model_id, CAST(p.predicted AS DOUBLE) AS v))),
                     x -> x.v),
           transform(sort_array(collect_list(struct(p.model_id AS model_id,
               CASE WHEN r.estimator LIKE '%\\_correct' ESCAPE '\\' THEN CAST(y.margin > 0 AS DOUBLE)
                    ELSE CAST(y.margin AS DOUBLE) END AS v))), x -> x.v)) AS kendall
FROM margins AS y
JOIN eval_predictions AS p ON y.model_id = p.model_id AND y.example_id = p.target_id
JOIN fit_runs AS r ON r.fit_id = p.fit_id
GROUP BY p.fit_id, p.target_id
