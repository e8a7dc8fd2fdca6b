-- view: eval_predictions
-- Predictions of each fit's selected datamodels for every eval model: bias + sum of the weights
-- over the model's mask (paper section 3.2). Written by `dmstore fit` when eval models exist.
-- Parameters: none.
-- Columns: fit_id BIGINT, model_id BIGINT, target_id INTEGER, predicted FLOAT.
CREATE OR REPLACE VIEW eval_predictions AS
SELECT * FROM read_parquet(getvariable('dmstore_files_eval_predictions'));
