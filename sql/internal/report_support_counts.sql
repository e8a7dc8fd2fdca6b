-- query: report_support_counts
-- Figure 7's counts: fit $f's targets, and those with a heuristic support.
-- Parameters: $f BIGINT.
SELECT count(*), count(support) FROM data_support($f)
