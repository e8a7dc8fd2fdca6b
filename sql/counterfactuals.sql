-- view: counterfactuals
-- Ground-truth counterfactuals (paper section 4.1.2): per fit, target, selector and k, the
-- actual effect of retraining without the removed set beside the datamodel's prediction.
-- Written by `dmstore counterfactual`.
-- Parameters: none.
-- Columns: see schemas/counterfactuals.json.
CREATE OR REPLACE VIEW counterfactuals AS
SELECT * FROM read_parquet(getvariable('dmstore_files_counterfactuals'));
