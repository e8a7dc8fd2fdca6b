-- query: compare
-- The method table: every fit's row of estimator_comparison, by fit id.
SELECT * FROM estimator_comparison ORDER BY fit_id
