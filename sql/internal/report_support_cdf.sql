-- query: report_support_cdf
-- Figure 7: the distribution of fit $f's heuristic data support.
-- Parameters: $f BIGINT.
SELECT * FROM data_support_cdf($f)
