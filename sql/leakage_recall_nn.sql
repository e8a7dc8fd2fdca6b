-- table macro: leakage_recall_nn(fit, k)
-- The nearest-neighbour baseline of leakage_recall: the same recall at k, with each test
-- target's candidates its k training examples nearest in the examples' `features` list column
-- (Euclidean distance). Needs examples with a `features` column (e.g. pixels or embeddings).
-- Requires: examples.features (registered only for stores whose examples have it).
-- Parameters: fit BIGINT, k INTEGER.
-- Columns: method VARCHAR ('nearest_neighbor'), k INTEGER, n_targets BIGINT, recall DOUBLE.
CREATE OR REPLACE MACRO leakage_recall_nn(fit, k) AS TABLE
WITH targets AS (SELECT target_id FROM leakage_targets(fit)),
nn AS (
    SELECT t.example_id AS target_id,
           min_by(r.group_key = t.group_key, list_distance(t.features, r.features), k) AS hits
    FROM examples AS t, examples AS r
    WHERE t.example_id IN (SELECT target_id FROM targets) AND r.split = 'train'
    GROUP BY t.example_id
)
SELECT 'nearest_neighbor' AS method, k::INTEGER AS k, (SELECT count(*) FROM targets) AS n_targets,
       count(*) FILTER (WHERE list_contains(hits, true)) / nullif((SELECT count(*) FROM targets), 0)::DOUBLE AS recall
FROM nn;
