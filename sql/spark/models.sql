-- spark variant of view: models
-- Why: DuckDB exposes the packed mask as BIT (for get_bit); Spark has no BIT type, so `mask`
-- stays the packed BINARY of np.packbits (bit i = train example i, most significant bit first);
-- test a bit with in_mask(mask, i).
SELECT model_id, experiment, alpha, seed, mask_id, role, mask, n_included,
       train_accuracy, test_accuracy, source, source_row, digest
FROM dmstore_files_models
