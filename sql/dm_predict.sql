-- macro: dm_predict(fit, target, mask)
-- Paper section 4.1: the selected datamodel's predicted output for training on an arbitrary
-- subset: bias + sum of the weights of the train examples in `mask` (a BIT such as
-- models.mask, or a BLOB of np.packbits of the d-bit mask).
-- Parameters: fit BIGINT, target INTEGER, mask BIT or BLOB.
-- Returns: DOUBLE (NULL when the fit has no such target).
CREATE OR REPLACE MACRO dm_predict(fit, target, mask) AS (
    SELECT any_value(f.bias)
           + coalesce(sum(w.weight) FILTER (WHERE get_bit(mask::BIT, w.train_id) = 1), 0)
    FROM fits AS f
    LEFT JOIN weights AS w ON w.fit_id = f.fit_id AND w.target_id = f.target_id AND w.lam = f.lam
    WHERE f.fit_id = fit AND f.target_id = target AND f.selected
);
