-- view: margins
-- One row per (model, target example): the correct-class margin of that model on that example.
-- Parameters: none.
-- Columns: model_id BIGINT, example_id INTEGER, margin FLOAT.
CREATE OR REPLACE VIEW margins AS
SELECT model_id, example_id, margin
FROM read_parquet(getvariable('dmstore_files_margins'));
