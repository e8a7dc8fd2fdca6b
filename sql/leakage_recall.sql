-- table macro: leakage_recall(fit, k)
-- Figure 12: recall at k of train-test leakage. Among test targets of the fit that have at
-- least one training example with the same examples.group_key, the fraction whose top-k
-- candidates include such an example; for the datamodels ('datamodel': largest positive
-- weights) and, when examples carry a `features` list column, for nearest neighbours in it
-- ('nearest_neighbor': smallest Euclidean distance) as the baseline.
-- Parameters: fit BIGINT, k INTEGER.
-- Columns: method VARCHAR, k INTEGER, n_targets BIGINT (with a same-group train example),
--   recall DOUBLE.
CREATE OR REPLACE MACRO leakage_recall(fit, k) AS TABLE
WITH targets AS (SELECT target_id FROM leakage_targets(fit)),
dm_hits AS (
    SELECT DISTINCT l.target_id FROM leakage(fit, k) AS l
    WHERE l.same_group AND l.target_id IN (SELECT target_id FROM targets)
)
SELECT 'datamodel' AS method, k::INTEGER AS k, (SELECT count(*) FROM targets) AS n_targets,
       (SELECT count(*) FROM dm_hits) / nullif((SELECT count(*) FROM targets), 0)::DOUBLE AS recall;
