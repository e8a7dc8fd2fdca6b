-- table macro: neighbor_features(fit, k, n_targets)
-- Figure 9: the first n_targets targets of a fit with their top-k positive and negative
-- neighbours (topk_neighbors) and both sides' `features` vectors, for drawing them.
-- Requires: examples.features (registered only for stores whose examples have it).
-- Parameters: fit BIGINT, k INTEGER, n_targets INTEGER.
-- Columns: the topk_neighbors columns, target_features, train_features.
CREATE OR REPLACE MACRO neighbor_features(fit, k, n_targets) AS TABLE
WITH nb AS (SELECT * FROM topk_neighbors(fit, k)),
t AS (SELECT DISTINCT target_id FROM nb ORDER BY target_id LIMIT n_targets)
SELECT nb.*, et.features AS target_features, er.features AS train_features
FROM nb
JOIN examples AS et ON et.example_id = nb.target_id
JOIN examples AS er ON er.example_id = nb.train_id
WHERE nb.target_id IN (SELECT target_id FROM t)
ORDER BY nb.target_id, nb.direction DESC, nb.rank;
