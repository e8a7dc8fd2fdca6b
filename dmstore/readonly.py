"""Classify SQL as read-only with sqlglot's parser (never regular expressions)."""
from __future__ import annotations

import logging

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from .errors import QueryError

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
    except ParseError as e:
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
