-- view: models
-- One row per trained model; the packed mask is exposed as BIT (bit i = train example i).
-- Parameters: none.
-- Columns: model_id BIGINT, experiment VARCHAR, alpha DOUBLE, seed BIGINT, mask_id BIGINT,
--   role VARCHAR, mask BIT, n_included INTEGER, train_accuracy DOUBLE, test_accuracy DOUBLE,
--   source VARCHAR, source_row BIGINT, digest VARCHAR.
CREATE OR REPLACE VIEW models AS
SELECT model_id, experiment, alpha, seed, mask_id, role, mask::BIT AS mask, n_included,
       train_accuracy, test_accuracy, source, source_row, digest
FROM read_parquet(getvariable('dmstore_files_models'));
