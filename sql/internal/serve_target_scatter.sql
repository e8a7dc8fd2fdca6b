-- query: serve_target_scatter
-- Target $t in each fit of $fits: predicted against actual margin on every eval model.
-- Parameters: $fits BIGINT[], $t INTEGER.
SELECT p.fit_id, p.model_id, p.predicted, y.margin
FROM eval_predictions AS p
JOIN margins AS y ON y.model_id = p.model_id AND y.example_id = p.target_id
WHERE list_contains($fits, p.fit_id) AND p.target_id = $t
ORDER BY p.fit_id, p.model_id
