-- table macro: data_support_cdf(fit, lam := NULL)
-- Figure 7: the cumulative distribution of the heuristic data support over a fit's targets:
-- for each support size k that occurs, the fraction of targets whose support is at most k
-- (targets whose support is NULL count in the denominator, never in the numerator).
-- Parameters: fit BIGINT, lam DOUBLE.
-- Columns: support BIGINT, n_targets BIGINT, fraction DOUBLE.
CREATE OR REPLACE MACRO data_support_cdf(fit, lam := NULL) AS TABLE
WITH s AS (SELECT support FROM data_support(fit, lam := lam)),
n AS (SELECT count(*) AS total FROM s)
SELECT support, count(*) AS n_targets,
       sum(count(*)) OVER (ORDER BY support) / any_value(n.total) AS fraction
FROM s, n
WHERE support IS NOT NULL
GROUP BY support
ORDER BY support;
