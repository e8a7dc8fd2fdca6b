-- query: macro_names
-- The macros and views defined on this connection (`dmstore macros` lists those of the catalog).
SELECT function_name AS name FROM duckdb_functions() WHERE macro_definition IS NOT NULL
UNION SELECT view_name FROM duckdb_views() WHERE NOT internal
