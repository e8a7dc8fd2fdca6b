-- query: ingest_null_margin
-- `ingest parquet`: the first row of a margins file with an empty (NULL) value, if any.
-- Parameters: $file VARCHAR.
SELECT model_id, example_id, margin
FROM read_parquet($file)
WHERE model_id IS NULL OR example_id IS NULL OR margin IS NULL
LIMIT 1
