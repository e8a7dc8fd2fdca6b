-- view: examples
-- The store's examples: one row per example (train examples are mask bits 0..d-1).
-- Parameters: none (the store root comes from the session variable dmstore_root).
-- Columns: example_id INTEGER, split VARCHAR, label INTEGER, group_key VARCHAR, then user columns.
CREATE OR REPLACE VIEW examples AS
SELECT * FROM read_parquet(getvariable('dmstore_root') || '/examples.parquet');
