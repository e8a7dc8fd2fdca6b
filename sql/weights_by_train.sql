-- view: weights_by_train
-- A train-major copy of a fit's selected weights (the rows of `datamodels`, sorted by train_id,
-- then target_id, in small row groups): filtering one train_id reads a few row groups, not the
-- fit. Only fits copied by `dmstore compact --by-train FIT` have rows here.
-- Parameters: none.
-- Columns: fit_id BIGINT, target_id INTEGER, lam DOUBLE, train_id INTEGER, weight FLOAT.
CREATE OR REPLACE VIEW weights_by_train AS
SELECT * FROM read_parquet(getvariable('dmstore_files_weights_by_train'));
