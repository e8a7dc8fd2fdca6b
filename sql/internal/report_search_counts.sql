-- query: report_search_counts
-- The guided support search of fit $f: targets searched, with an estimate, certified.
-- Parameters: $f BIGINT.
SELECT count(*), count(support), count(*) FILTER (certified) FROM support WHERE fit_id = $f
