-- query: serve_features
-- The `features` vector of example $i (stores whose examples carry one).
-- Parameters: $i INTEGER.
SELECT features FROM examples WHERE example_id = $i
