-- query: trained_sources
-- The `train:<recipe>…` sources of the models of an experiment and alpha (which recipe trained them).
-- Parameters: $e VARCHAR, $a DOUBLE.
SELECT DISTINCT source FROM models
WHERE experiment = $e AND alpha = $a AND source LIKE 'train:%'
