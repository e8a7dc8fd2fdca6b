-- query: serve_example_top
-- Per training example of fit $f: the $k targets whose selected datamodels give it the largest
-- positive weights and the $k with the most negative ones (ids and weights as parallel lists,
-- largest |weight| first; ties by target id). One pass over the fit's weights, kept by the
-- explorer for the snapshot's life.
-- Parameters: $f BIGINT, $k INTEGER.
SELECT train_id,
       max_by(target_id, (weight, -target_id), $k) FILTER (WHERE weight > 0) AS pos_t,
       max_by(weight, (weight, -target_id), $k) FILTER (WHERE weight > 0) AS pos_w,
       min_by(target_id, (weight, target_id), $k) FILTER (WHERE weight < 0) AS neg_t,
       min_by(weight, (weight, target_id), $k) FILTER (WHERE weight < 0) AS neg_w
FROM dm_weights($f)
GROUP BY train_id
