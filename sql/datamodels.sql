-- view: datamodels
-- The selected datamodel of every (fit, target): weights at the lambda chosen on validation
-- models, with the fit's bias. Predict a mask's margin as bias + sum(weight over train_ids in it).
-- Parameters: none.
-- Columns: fit_id BIGINT, experiment VARCHAR, alpha DOUBLE, estimator VARCHAR, target_id INTEGER,
--   lam DOUBLE, bias DOUBLE, train_id INTEGER, weight FLOAT.
CREATE OR REPLACE VIEW datamodels AS
SELECT f.fit_id, f.experiment, f.alpha, f.estimator, f.target_id, f.lam, f.bias,
       w.train_id, w.weight
FROM weights AS w   -- weights first: DuckDB builds the join's hash table on the right side
JOIN fits AS f
  ON w.fit_id = f.fit_id AND w.target_id = f.target_id AND w.lam = f.lam
WHERE f.selected;
