-- query: frontier_sources
-- The sources of the fit and val models of experiment $e at alpha $a (whose training commits give
-- the seconds per model).
-- Parameters: $e VARCHAR, $a DOUBLE.
SELECT DISTINCT source FROM models WHERE experiment = $e AND alpha = $a AND role IN ('fit', 'val')
