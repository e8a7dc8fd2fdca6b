-- query: serve_fit_sizes
-- Per fit: its estimator and the weights of its selected datamodels (how much one pass over them
-- reads), from fit_runs and fits alone (no held-out metrics: cheap on any store).
-- Parameters: none.
SELECT r.fit_id, r.estimator, coalesce(s.n_weights, 0)::BIGINT AS n_weights
FROM fit_runs AS r
LEFT JOIN (SELECT fit_id, sum(nnz) AS n_weights FROM fits WHERE selected GROUP BY fit_id) AS s USING (fit_id)
ORDER BY r.fit_id
