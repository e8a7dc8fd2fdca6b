-- query: serve_metrics
-- The held-out Spearman correlation (eval_metrics) of every target of fit $f.
-- Parameters: $f BIGINT.
SELECT target_id, spearman AS lds FROM eval_metrics WHERE fit_id = $f
