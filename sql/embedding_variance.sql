-- view: embedding_variance
-- Explained variance ratio of each principal component of a fit's embedding.
-- Written by `dmstore embed`.
-- Parameters: none.
-- Columns: see schemas/embedding_variance.json.
CREATE OR REPLACE VIEW embedding_variance AS
SELECT * FROM read_parquet(getvariable('dmstore_files_embedding_variance'));
