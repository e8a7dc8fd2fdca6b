-- query: demo_top5
-- The demo's example neighbours: the first three targets of fit $f with their top-5 positive
-- train examples and labels.
-- Parameters: $f BIGINT.
SELECT target_id, any_value(target_label), list(train_id ORDER BY rank), list(train_label ORDER BY rank)
FROM topk_neighbors($f, 5)
WHERE direction = 'positive'
GROUP BY target_id ORDER BY target_id LIMIT 3
