-- query: serve_target_scatter
-- Target $t in fit $f: predicted against actual margin on every eval model.
-- Parameters: $f BIGINT, $t INTEGER.
SELECT p.model_id, p.predicted, y.margin
FROM eval_predictions AS p
JOIN margins AS y ON y.model_id = p.model_id AND y.example_id = p.target_id
WHERE p.fit_id = $f AND p.target_id = $t
ORDER BY p.model_id
