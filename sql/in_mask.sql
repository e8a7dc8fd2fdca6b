-- macro: in_mask(mask, train_id)
-- True when train example `train_id` (0-based mask bit) is in `mask` (a BIT from models.mask).
-- Parameters: mask BIT, train_id INTEGER.
-- Returns: BOOLEAN.
CREATE OR REPLACE MACRO in_mask(mask, train_id) AS get_bit(mask, CAST(train_id AS INTEGER)) = 1;
