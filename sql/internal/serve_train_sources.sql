-- query: serve_train_sources
-- Every `train:<recipe>…` source of the store's models (which recipes trained them).
-- Parameters: none.
SELECT DISTINCT source FROM models WHERE source LIKE 'train:%' ORDER BY source
