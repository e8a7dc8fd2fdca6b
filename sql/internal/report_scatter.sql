-- query: report_scatter
-- Figure 5's sample of (eval model, target) pairs of fit $f, and the count of all of them.
-- Parameters: $f BIGINT.
SELECT predicted, margin FROM eval_scatter($f, 20000)
