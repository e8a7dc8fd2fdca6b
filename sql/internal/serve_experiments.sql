-- query: serve_experiments
-- The explorer's home: models per experiment, alpha and role.
-- Parameters: none.
SELECT experiment, alpha, role, count(*) AS models, min(n_included) AS min_included,
       max(n_included) AS max_included
FROM models GROUP BY ALL ORDER BY experiment, alpha, role
