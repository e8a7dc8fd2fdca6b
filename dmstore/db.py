"""DuckDB access to a store: every `sql/*.sql` file (views, macros) registered on connect."""
from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

import duckdb

from . import schema
from .errors import QueryError

_HEADER = re.compile(r"^--\s*(view|macro|table macro):\s*(\w+)", re.M)
_REQUIRES = re.compile(r"^--\s*Requires:\s*(\w+)\.(\w+)", re.M)


@lru_cache(maxsize=None)
def sql_files() -> dict[str, str]:
    """name → SQL text of every file in `sql/` (the name is the file's stem)."""
    root = resources.files("dmstore.sql")
    return {p.name[:-4]: p.read_text() for p in sorted(root.iterdir(), key=lambda p: p.name)
            if p.name.endswith(".sql")}


def sql_text(name: str) -> str:
    return sql_files()[name]


def view_names() -> list[str]:
    """Names of the views (not macros) the SQL files define, in file order."""
    return [m.group(2) for t in sql_files().values() for m in [_HEADER.search(t)]
            if m and m.group(1) == "view"]


def register(con: duckdb.DuckDBPyConnection) -> None:
    """Run every SQL file on `con`, in dependency order (a file whose dependencies are not yet
    defined is retried after the others). A file with a `-- Requires: rel.col` header is left
    out when the store's `rel` has no column `col`."""
    pending = dict(sql_files())
    while pending:
        progressed, last = False, None
        for name, text in list(pending.items()):
            needs = _REQUIRES.findall(text)
            if any(not _has_relation(con, r) for r, _ in needs):
                last = (name, "waits for " + ", ".join(r for r, _ in needs))
                continue
            if any(not _has_column(con, r, c) for r, c in needs):
                del pending[name]  # the store lacks the column: leave the file out
                progressed = True
                continue
            try:
                con.execute(text)
            except (duckdb.CatalogException, duckdb.BinderException) as e:
                last = (name, e)
                continue
            except duckdb.IOException as e:
                if "No files found" not in str(e) or name not in schema.TABLES:
                    raise
                con.execute(_empty_view(name))  # a relation nothing has written yet
            del pending[name]
            progressed = True
        if not progressed:
            raise QueryError(f"sql/{last[0]}.sql does not register: {last[1]}")


def _has_relation(con, rel: str) -> bool:
    try:
        con.execute(f'DESCRIBE "{rel}"')
        return True
    except duckdb.Error:
        return False


def _empty_view(name: str) -> str:
    """A typed, empty view for table `name` (from schemas/), when no file of it exists yet."""
    cols = ", ".join(f'CAST(NULL AS {_DUCK[c["type"]]}) AS "{c["name"]}"' for c in schema.table_spec(name)["columns"])
    return f'CREATE OR REPLACE VIEW "{name}" AS SELECT {cols} WHERE false'


_DUCK = {"int32": "INTEGER", "int64": "BIGINT", "float32": "FLOAT", "float64": "DOUBLE", "string": "VARCHAR",
         "binary": "BLOB", "bool": "BOOLEAN"}


def _has_column(con, rel: str, col: str) -> bool:
    try:
        return col in [r[0] for r in con.execute(f'DESCRIBE "{rel}"').fetchall()]
    except duckdb.Error:
        return False


def connect(store, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """In-memory DuckDB connection whose views read the store's Parquet files in place."""
    from .store import Store
    root = store.root if isinstance(store, Store) else Path(store)
    if not isinstance(store, Store):
        Store.open(root, "r")  # checks the manifest and format version
    con = duckdb.connect(":memory:")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute("SET VARIABLE dmstore_root = ?", [str(Path(root).resolve())])
    register(con)
    return con


def _param_value(v):
    """CLI parameters arrive as text: numbers become numbers, the rest stays text."""
    if not isinstance(v, str):
        return v
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def query(store, sql: str, params: dict | None = None, con=None, tables: dict | None = None):
    """Run read-only `sql` (one or more statements; the last one's rows are returned) with named
    parameters `$name` from `params` and extra relations `tables` (name → CSV/Parquet file, for
    macros that take a table such as dm_removal_effect); returns a pyarrow Table. Writes are
    refused (QueryError)."""
    from .readonly import check_read_only
    n = check_read_only(sql)
    con = con or connect(store)
    for name, path in (tables or {}).items():
        attach_file(con, name, path)
    params = {k: _param_value(v) for k, v in (params or {}).items()}
    try:
        if n > 1:
            if params:
                raise QueryError("parameters (-p) work with a single statement only")
            return con.sql(sql).to_arrow_table()
        rel = con.sql(sql, params=params or None)
        if rel is None:
            raise QueryError("the statement returns no rows")
        return rel.to_arrow_table()
    except duckdb.Error as e:
        raise QueryError(str(e).strip()) from None



def attach_file(con, name: str, path) -> None:
    """Expose a CSV or Parquet file as relation `name` on `con`."""
    from .errors import InputError
    p = Path(path)
    if not p.exists():
        raise InputError(f"--table {name}={path}: no such file")
    if not name.isidentifier():
        raise InputError(f"--table {name}=…: the name must be an identifier")
    try:
        rel = con.read_parquet(str(p)) if p.suffix in (".parquet", ".pq") else con.read_csv(str(p))
        rel.to_view(name)
    except duckdb.Error as e:
        raise InputError(f"--table {name}={path}: cannot read it ({str(e).strip()})") from None


def export(store, out, relation: str | None = None, sql: str | None = None, fmt: str = "parquet",
           partition_by: list[str] | None = None, params: dict | None = None) -> int:
    """Write a relation (or read-only `sql`) to `out` as parquet|csv|json|jsonl; Parquet may be
    partitioned into a directory by columns. Returns the row count. DuckDB streams the rows."""
    from .output import FORMATS
    from .readonly import check_read_only
    if (relation is None) == (sql is None):
        raise QueryError("give a relation or --sql, not both")
    if relation is not None and relation not in _all_relations():
        raise QueryError(f"unknown relation {relation!r}; one of {', '.join(_all_relations())}")
    if fmt not in FORMATS or fmt == "table":
        raise QueryError(f"--format must be parquet, csv, json or jsonl, got {fmt!r}")
    if partition_by and fmt != "parquet":
        raise QueryError("--partition-by works with --format parquet only")
    if sql is not None and check_read_only(sql) != 1:
        raise QueryError("--sql takes exactly one SELECT statement")
    con = connect(store)
    rel = con.sql(sql if sql is not None else f'SELECT * FROM "{relation}"',
                  params={k: _param_value(v) for k, v in (params or {}).items()} or None)
    # BIT columns become '0101…' text in Parquet and JSON; export masks as packed BLOBs instead.
    cols = [f'"{c}"::BLOB AS "{c}"' if str(t) == "BIT" else f'"{c}"' for c, t in zip(rel.columns, rel.types)]
    rel = rel.project(", ".join(cols))
    out = str(Path(out))
    n = rel.aggregate("count(*)").fetchall()[0][0]
    try:
        if fmt == "parquet":
            if partition_by:
                rel.write_parquet(out, compression="zstd", partition_by=list(partition_by),
                                  overwrite=True)
            else:
                rel.write_parquet(out, compression="zstd")
        elif fmt == "csv":
            rel.write_csv(out, header=True)
        else:
            rel.to_view("_dmstore_export")
            array = ", ARRAY true" if fmt == "json" else ""
            con.execute(f"COPY (SELECT * FROM _dmstore_export) TO '{out.replace(chr(39), chr(39) * 2)}' "
                        f"(FORMAT json{array})")
    except duckdb.Error as e:
        raise QueryError(f"export to {out} failed: {str(e).strip()}") from None
    return n


def _all_relations() -> list[str]:
    return view_names()
