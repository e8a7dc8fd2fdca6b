"""The query sandbox: SQL classified as read-only with sqlglot's parser (never regular
expressions), then DuckDB's own (`query.read_relation`), on a connection locked down to the
store's files (`lock_down`)."""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from ..errors import QueryError

logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its Command fallback warning

_READ_ROOTS = (exp.Select, exp.SetOperation, exp.Subquery, exp.Values, exp.Describe, exp.Show)
# Anything of these kinds anywhere in the tree writes, changes state, or reaches outside.
_FORBIDDEN = tuple(getattr(exp, n) for n in (
    "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "AlterColumn", "Copy",
    "Attach", "Detach", "Command", "Set", "Pragma", "Use", "Transaction", "Commit", "Rollback",
    "TruncateTable", "Grant", "Install", "Load", "Export", "Into", "LoadData", "Refresh", "Cache",
    "Uncache", "Analyze", "Kill", "Summarize",
) if hasattr(exp, n))


def check_read_only(sql: str) -> int:
    """Raise `QueryError` unless every statement of `sql` only reads; returns the count."""
    try:
        trees = [t for t in sqlglot.parse(sql, read="duckdb") if t is not None]
    except RecursionError:
        raise QueryError("the query nests too deeply to check that it only reads (more than a few dozen "
                         "levels of parentheses or subqueries); flatten it, e.g. with WITH clauses") from None
    except (ParseError, SqlglotError) as e:
        raise QueryError(f"cannot parse the query: {str(e).splitlines()[0]}") from None
    if not trees:
        raise QueryError("the query is empty")
    for t in trees:
        bad = t if isinstance(t, _FORBIDDEN) else t.find(*_FORBIDDEN)
        if bad is not None or not isinstance(t, _READ_ROOTS):
            what = type(bad or t).__name__.upper()
            raise QueryError(f"only read statements run here; refused a {what} statement. "
                             f"Use the dmstore commands (ingest, fit, export) to change a store")
    return len(trees)


DEFAULT_MEMORY_LIMIT = "50%"   # of the machine's memory: a big query leaves the rest usable


def spill_directory(tmp: Path) -> str:
    """Where DuckDB spills a sandboxed query's intermediates: the store's private `.tmp/` when
    writable, else the system temp folder (a read-only store), never the current directory."""
    tmp = Path(tmp)
    if tmp.is_dir() and os.access(tmp, os.W_OK):
        return str(tmp / f"duckdb-spill-{os.getpid()}")
    return str(Path(tempfile.gettempdir()) / f"dmstore-spill-{os.getpid()}")


def lock_down(con, allowed: list[str], tmp: Path) -> None:
    """Sandbox `con`: it reads only the `allowed` files, loads no extension, spills into
    `spill_directory(tmp)`, and its configuration is locked (no SET, profiling or logging)."""
    con.execute("SET temp_directory = ?", [spill_directory(tmp)])
    con.execute("SET allowed_paths = ?::VARCHAR[]", [allowed])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
