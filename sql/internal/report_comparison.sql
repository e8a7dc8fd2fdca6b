-- query: report_comparison
-- Table K.1 of a report: the estimator_comparison rows of fit $f and of the newest fit of every
-- other estimator on the same experiment $e and alpha $a (every fit there when $all).
-- Parameters: $f BIGINT, $e VARCHAR, $a DOUBLE, $all BOOLEAN, $est VARCHAR (fit $f's estimator).
SELECT * FROM estimator_comparison
WHERE experiment = $e AND alpha = $a
  AND ($all OR fit_id = $f OR fit_id IN (SELECT max(fit_id) FROM fit_runs
                                         WHERE experiment = $e AND alpha = $a AND estimator <> $est
                                         GROUP BY estimator))
ORDER BY fit_id
