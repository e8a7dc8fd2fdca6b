-- query: serve_version
-- The store version this connection reads.
-- Parameters: none.
SELECT getvariable('dmstore_version') AS version
