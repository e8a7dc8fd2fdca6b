-- query: ingest_orphan_margins
-- `ingest parquet`: a model id of a margins file that no models file holds (registered as
-- _dm_ids), and how many such ids there are.
-- Parameters: $file VARCHAR.
SELECT model_id, count(*) OVER () AS n
FROM (SELECT DISTINCT model_id FROM read_parquet($file))
ANTI JOIN _dm_ids USING (model_id)
LIMIT 1
