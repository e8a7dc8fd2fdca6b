-- view: weights
-- One row per non-zero datamodel weight, in raw-mask coordinates (margin units per example).
-- Parameters: none.
-- Columns: fit_id BIGINT, target_id INTEGER, lam DOUBLE, train_id INTEGER, weight FLOAT.
CREATE OR REPLACE VIEW weights AS
SELECT * FROM read_parquet(getvariable('dmstore_files_weights'));
