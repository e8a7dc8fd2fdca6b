-- query: has_function
-- Whether this connection has a function or macro called $name (a `Requires:` analytic).
-- Parameters: $name VARCHAR.
SELECT count(*) > 0 FROM duckdb_functions() WHERE function_name = $name
