-- query: ingest_margins_chunk
-- `ingest parquet`: the margins of the models with ids in [lo, hi], model-major.
-- Parameters: $lo, $hi BIGINT; session variable margin_files.
SELECT model_id, example_id, margin
FROM read_parquet(getvariable('margin_files'))
WHERE model_id BETWEEN $lo AND $hi
ORDER BY model_id, example_id
