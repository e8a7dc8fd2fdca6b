-- spark variant of macro: in_mask(mask, train_id)
-- Why: DuckDB's get_bit reads a BIT; in Spark the mask is the packed BINARY, so the bit is
-- taken from byte train_id DIV 8 (most significant bit first), as np.packbits wrote it.
CREATE OR REPLACE TEMPORARY FUNCTION in_mask(mask BINARY, train_id INT) RETURNS BOOLEAN
RETURN shiftright(CAST(conv(hex(substring(mask, train_id DIV 8 + 1, 1)), 16, 10) AS INT), 7 - train_id % 8) & 1 = 1
