-- query: fit_selected_only
-- Whether fit $f stores only the weights of its selected datamodels (no --keep-path): its stored
-- weights number exactly the selected non-zeros, so its blocks are read without the join with
-- fits that `datamodels` makes (5x faster on a dense fit's block).
-- Parameters: $f BIGINT.
SELECT (SELECT count(*) FROM weights WHERE fit_id = $f)
       = (SELECT coalesce(sum(nnz), 0) FROM fits WHERE fit_id = $f AND selected) AS selected_only
