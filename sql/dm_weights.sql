-- table macro: dm_weights(fit, lam := NULL)
-- The weights of one fit at one lambda: the selected datamodel of every target when lam is
-- NULL (the default), else the path solution at that lambda (written with --keep-path).
-- Parameters: fit BIGINT (fit_id), lam DOUBLE (NULL: selected).
-- Columns: target_id INTEGER, train_id INTEGER, weight FLOAT, bias DOUBLE, lam DOUBLE.
CREATE OR REPLACE MACRO dm_weights(fit, lam := NULL) AS TABLE
SELECT w.target_id, w.train_id, w.weight, f.bias, f.lam
FROM weights AS w   -- weights first: DuckDB builds the join's hash table on the right side
JOIN fits AS f ON w.fit_id = f.fit_id AND w.target_id = f.target_id AND w.lam = f.lam
WHERE f.fit_id = fit AND w.fit_id = fit
  AND ((lam IS NULL AND f.selected) OR f.lam = lam);
