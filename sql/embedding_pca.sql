-- view: embedding_pca
-- PCA coordinates of each target's L2-normalized datamodel weights (section 4.3.2).
-- Written by `dmstore embed`.
-- Parameters: none.
-- Columns: see schemas/embedding_pca.json.
CREATE OR REPLACE VIEW embedding_pca AS
SELECT * FROM read_parquet(getvariable('dmstore_files_embedding_pca'));
