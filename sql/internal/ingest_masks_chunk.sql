-- query: ingest_masks_chunk
-- `ingest parquet`: the masks of the models with ids in [lo, hi].
-- Parameters: $lo, $hi BIGINT; session variable model_files.
SELECT model_id, mask
FROM read_parquet(getvariable('model_files'))
WHERE model_id BETWEEN $lo AND $hi
ORDER BY model_id
