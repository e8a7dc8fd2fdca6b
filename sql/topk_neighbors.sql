-- table macro: topk_neighbors(fit, k, lam := NULL)
-- Paper section 4.2: for every target of a fit, its k most positive and k most negative
-- training examples by datamodel weight, with rank (1 = largest |weight|) and labels.
-- Parameters: fit BIGINT, k INTEGER, lam DOUBLE (NULL: the selected datamodels).
-- Columns: target_id INTEGER, target_label INTEGER, direction VARCHAR ('positive'|'negative'),
--   rank BIGINT, train_id INTEGER, weight FLOAT, train_label INTEGER.
CREATE OR REPLACE MACRO topk_neighbors(fit, k, lam := NULL) AS TABLE
WITH w AS (SELECT target_id, train_id, weight FROM dm_weights(fit, lam := lam)),
tops AS (  -- one pass over the weights for both directions; ids and weights as parallel lists
    -- (plain-typed top-k lists are ~1.4x faster than a list of structs; ties share a weight,
    -- so the i-th weight is always the i-th id's)
    SELECT target_id,
           max_by(train_id, weight, k) FILTER (WHERE weight > 0) AS pos_id,
           max(weight, k) FILTER (WHERE weight > 0) AS pos_w,
           min_by(train_id, weight, k) FILTER (WHERE weight < 0) AS neg_id,
           min(weight, k) FILTER (WHERE weight < 0) AS neg_w
    FROM w GROUP BY target_id
),
sides AS (
    SELECT target_id, 'positive' AS direction, pos_id AS ids, pos_w AS ws FROM tops WHERE pos_id IS NOT NULL
    UNION ALL
    SELECT target_id, 'negative' AS direction, neg_id AS ids, neg_w AS ws FROM tops WHERE neg_id IS NOT NULL
),
flat AS (
    SELECT target_id, direction, generate_subscripts(ids, 1) AS rank, unnest(ids) AS train_id,
           unnest(ws) AS weight
    FROM sides
)
SELECT f.target_id, et.label AS target_label, f.direction, f.rank, f.train_id,
       f.weight, er.label AS train_label
FROM flat AS f
JOIN examples AS et ON et.example_id = f.target_id
JOIN examples AS er ON er.example_id = f.train_id
ORDER BY f.target_id, f.direction DESC, f.rank;
