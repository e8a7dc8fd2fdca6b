"""Exports for analysts: a relation or a read-only query's rows, streamed to a file (Parquet,
CSV, JSON, JSON lines) or a Hive-partitioned Parquet directory; never into the store."""
from __future__ import annotations

from pathlib import Path

import duckdb

from ..errors import InputError, QueryError
from ..store.state import open_state
from . import catalog
from .formats import FORMATS, write_partitioned
from .query import query_error, read_relation, stream
from .sandbox import check_read_only

EXPORT_FORMATS = tuple(f for f in FORMATS if f != "table")


def check_outside(root: Path, out) -> None:
    """Refuse an output path that is, is inside, or contains the store at `root` (resolved)."""
    root = Path(root).resolve()
    target = Path(out).resolve()
    if target == root or root in target.parents or target in root.parents:
        where = "a folder that contains the store" if target in root.parents else "inside the store"
        raise InputError(f"output {out}: that is {where} {root}; an export never writes (or, with "
                         f"overwrite, deletes) the store. Export to a path outside it", params=("out",))


def export(store, out, relation: str | None = None, sql: str | None = None, fmt: str = "parquet",
           partition_by: list[str] | None = None, params: dict | None = None, overwrite: bool = False,
           as_of: int | None = None, tables: dict | None = None, **connect_kw) -> int:
    """Write a relation (or read-only `sql`) to `out` (a file; '-' is stdout) as
    parquet|csv|json|jsonl, streaming; Parquet may be partitioned into a directory by columns
    (`overwrite` replaces a non-empty one). Refuses any output that is, is inside or contains
    the store. Returns the row count."""
    if (relation is None) == (sql is None):
        raise QueryError("give a relation or sql, not both", params=("relation", "sql"))
    if relation is not None and relation not in catalog.view_names():
        raise QueryError(f"unknown relation {relation!r}; one of {', '.join(catalog.view_names())}",
                         params=("relation",))
    if fmt not in EXPORT_FORMATS:
        raise QueryError(f"fmt must be parquet, csv, json or jsonl, got {fmt!r}", params=("fmt",))
    if partition_by and fmt != "parquet":
        raise QueryError("partition_by works with fmt parquet only", params=("partition_by", "fmt"))
    if out != "-":
        check_outside(open_state(store, "r", as_of).root, out)
    elif partition_by:
        raise QueryError("partition_by writes a directory; give a directory as out, not -", params=("partition_by",))
    if sql is not None and check_read_only(sql) != 1:
        raise QueryError("sql takes exactly one SELECT statement", params=("sql",))
    rel = read_relation(store, sql if sql is not None else f'SELECT * FROM "{relation}"', params,
                        tables, as_of, **connect_kw)
    if partition_by:
        try:
            return write_partitioned(rel, Path(out), list(partition_by), overwrite)
        except duckdb.Error as e:
            raise query_error(e, store) from None
    return stream(rel, fmt, out, store=store)
