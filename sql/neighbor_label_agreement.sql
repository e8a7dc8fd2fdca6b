-- table macro: neighbor_label_agreement(fit, k)
-- Paper section 4.2 (figure 9): how often a target's k most positive training examples share
-- its label, over all (target, neighbour) pairs and averaged per target.
-- Parameters: fit BIGINT, k INTEGER.
-- Columns: pairs DOUBLE (share of pairs), per_target DOUBLE (mean over targets of their share),
--   n_targets BIGINT.
CREATE OR REPLACE MACRO neighbor_label_agreement(fit, k) AS TABLE
WITH t AS (
    SELECT target_id, count(*) AS n, sum((train_label = target_label)::INTEGER) AS same
    FROM topk_neighbors(fit, k)
    WHERE direction = 'positive'
    GROUP BY target_id
)
SELECT sum(same) / sum(n)::DOUBLE AS pairs, avg(same / n::DOUBLE) AS per_target, count(*) AS n_targets
FROM t;
