-- view: support
-- Data support estimated by the guided search of Algorithm 1 (appendix F.3): per fit and
-- target, the isotonic-regression zero k_hat, the reported support ceil(1.2·k_hat) and whether
-- retraining without that many top examples misclassified the target on average.
-- Written by `dmstore support`.
-- Parameters: none.
-- Columns: see schemas/support.json.
CREATE OR REPLACE VIEW support AS
SELECT * FROM read_parquet(getvariable('dmstore_files_support'));
