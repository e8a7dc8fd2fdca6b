-- query: serve_target_weights
-- Every non-zero weight of target $t's selected datamodel in each of the fits $fits.
-- Parameters: $t INTEGER, $fits BIGINT[].
SELECT w.fit_id, w.train_id, w.weight
FROM weights AS w
JOIN fits AS f ON w.fit_id = f.fit_id AND w.target_id = f.target_id AND w.lam = f.lam
WHERE w.target_id = $t AND f.target_id = $t AND f.selected AND list_contains($fits, w.fit_id)
