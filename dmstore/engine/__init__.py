"""The SQL engine: one catalog of `sql/` (`catalog`), a sandboxed DuckDB connection over a
snapshot (`connect`), read-only queries (`query`), exports and output formats."""
from .catalog import SqlObject, internal, macros, objects, view_names, views
from .connect import attach_file, connect, register
from .export import export, export_scores
from .query import query, query_error, read_relation, run, stream
from .sandbox import check_read_only

__all__ = ["connect", "register", "attach_file", "query", "read_relation", "stream", "run", "export", "export_scores",
           "query_error", "check_read_only", "objects", "views", "view_names", "macros", "internal",
           "SqlObject"]
