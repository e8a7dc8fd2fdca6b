-- query: serve_first_features
-- The first non-null `features` vector of the store's examples (is it a picture?).
-- Parameters: none.
SELECT features FROM examples WHERE features IS NOT NULL LIMIT 1
