-- query: ingest_first_targets
-- `ingest parquet`: the targets of one model in the margins files being ingested (every model
-- of an experiment and alpha must have margins on the same targets).
-- Parameters: $model BIGINT; session variable margin_files (the files).
SELECT list(DISTINCT example_id ORDER BY example_id) AS targets
FROM read_parquet(getvariable('margin_files'))
WHERE model_id = $model
