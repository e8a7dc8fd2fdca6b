-- table macro: leakage(fit, k)
-- Paper section 4.2.2: per test target of a fit, its k training examples with the largest
-- positive weights as leakage candidates, and a leakage score = the largest weight (margin
-- units: how much the single most supportive training example raises the target's margin);
-- test targets are ranked by that score (rank 1 = most likely leaked). same_group is true when
-- the candidate shares the target's examples.group_key (duplicate / scene ground truth).
-- Parameters: fit BIGINT, k INTEGER.
-- Columns: target_id, leakage_rank BIGINT, score DOUBLE, candidate_rank BIGINT, train_id,
--   weight FLOAT, same_group BOOLEAN.
CREATE OR REPLACE MACRO leakage(fit, k) AS TABLE
WITH cand AS (
    SELECT n.target_id, n.rank AS candidate_rank, n.train_id, n.weight
    FROM topk_neighbors(fit, k) AS n
    JOIN examples AS e ON e.example_id = n.target_id
    WHERE n.direction = 'positive' AND e.split = 'test'
),
score AS (
    SELECT target_id, max(weight)::DOUBLE AS score,
           rank() OVER (ORDER BY max(weight) DESC) AS leakage_rank
    FROM cand GROUP BY target_id
)
SELECT c.target_id, s.leakage_rank, s.score, c.candidate_rank, c.train_id, c.weight,
       coalesce(et.group_key = er.group_key, false) AS same_group
FROM cand AS c
JOIN score AS s USING (target_id)
JOIN examples AS et ON et.example_id = c.target_id
JOIN examples AS er ON er.example_id = c.train_id
ORDER BY s.leakage_rank, c.candidate_rank;
