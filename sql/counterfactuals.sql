-- view: counterfactuals
-- Ground-truth counterfactuals (paper section 4.1.2): per fit, target, selector and k, the
-- actual effect of retraining without the removed set beside the datamodel's prediction; or
-- per (set_id, target) of a `--removals` file (selector 'removals').
-- Written by `dmstore counterfactual`. Files of older stores lack set_id (read as NULL).
-- Parameters: none.
-- Columns: see schemas/counterfactuals.json.
CREATE OR REPLACE VIEW counterfactuals AS
SELECT * FROM read_parquet(getvariable('dmstore_files_counterfactuals'), union_by_name = true);
