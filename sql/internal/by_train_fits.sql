-- query: by_train_fits
-- The fits that have a train-major copy (weights_by_train), read from the files' row-group
-- statistics of fit_id (no scan of the rows).
-- Parameters: none.
SELECT DISTINCT stats_min_value::BIGINT AS fit_id
FROM parquet_metadata(getvariable('dmstore_files_weights_by_train'))
WHERE path_in_schema = 'fit_id' AND stats_min_value IS NOT NULL
ORDER BY 1
