-- view: clusters
-- Spectral clusters (RBF affinity) of each target's normalized datamodel weights
-- (section 4.3.1). Written by `dmstore embed`.
-- Parameters: none.
-- Columns: see schemas/clusters.json.
CREATE OR REPLACE VIEW clusters AS
SELECT * FROM read_parquet(getvariable('dmstore_files_clusters'));
