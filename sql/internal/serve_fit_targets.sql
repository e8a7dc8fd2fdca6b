-- query: serve_fit_targets
-- The targets of fit $f with their labels, in id order.
-- Parameters: $f BIGINT.
SELECT f.target_id, e.label FROM fits AS f JOIN examples AS e ON e.example_id = f.target_id
WHERE f.fit_id = $f AND f.selected ORDER BY f.target_id
