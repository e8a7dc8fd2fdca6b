-- table macro: leakage_targets(fit)
-- The test targets of a fit that have at least one training example with the same
-- examples.group_key: the denominators of leakage_recall and leakage_recall_nn.
-- Parameters: fit BIGINT.
-- Columns: target_id INTEGER.
CREATE OR REPLACE MACRO leakage_targets(fit) AS TABLE
SELECT DISTINCT f.target_id
FROM fits AS f
JOIN examples AS t ON t.example_id = f.target_id
WHERE f.fit_id = fit AND t.split = 'test'
  AND EXISTS (SELECT 1 FROM examples AS r WHERE r.split = 'train' AND r.group_key = t.group_key);
