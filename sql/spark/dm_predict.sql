-- spark variant of macro: dm_predict(fit, target, mask)
-- Why: get_bit on a BIT has no Spark equivalent; the packed BINARY mask is read with in_mask.
-- Spark has no scalar macros: this is a one-row query (column dm_predict).
SELECT any_value(f.bias)
       + coalesce(sum(w.weight) FILTER (WHERE in_mask(:mask, w.train_id)), 0) AS dm_predict
FROM fits AS f
LEFT JOIN weights AS w ON w.fit_id = f.fit_id AND w.target_id = f.target_id AND w.lam = f.lam
WHERE f.fit_id = :fit AND f.target_id = :target AND f.selected
