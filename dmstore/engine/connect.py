"""A DuckDB connection over one snapshot of a store: every relation and analytic of the
catalog registered, extra files attached, and (by default) sandboxed."""
from __future__ import annotations

from pathlib import Path

import duckdb

from ..errors import InputError, QueryError, StoreError
from ..storage import paths as P
from ..storage import schema
from ..store.state import open_state
from . import catalog
from .sandbox import DEFAULT_MEMORY_LIMIT, lock_down
from .udfs import register as register_udfs


def empty_view(name: str) -> str:
    """A typed, empty view for table `name` (from schemas/), when no file of it exists yet."""
    cols = ", ".join(f'CAST(NULL AS {schema.sql_type(c["type"], "duckdb")}) AS "{c["name"]}"'
                     for c in schema.table_spec(name)["columns"])
    return f'CREATE OR REPLACE VIEW "{name}" AS SELECT {cols} WHERE false'


def _columns(con, rel: str) -> list[str]:
    try:
        return [r[0] for r in con.execute(f'DESCRIBE "{rel}"').fetchall()]
    except duckdb.Error:
        return []


def register(con: duckdb.DuckDBPyConnection, files: dict | None = None, snapshot=None) -> None:
    """Create every view and macro of the catalog on `con`, in dependency order. An object
    with a `-- Requires: rel.col` header is left out when the store's `rel` has no column
    `col`. A relation whose file list (`files`) is empty gets a typed empty view."""
    have: dict[str, list[str]] = {}
    for o in catalog.objects().values():
        if o.requires is not None:
            rel = o.requires[0]
            if rel not in have:
                have[rel] = _columns(con, rel)
            if not catalog.applies(o, have):
                continue
        try:
            if o.is_view and files is not None and o.name in files and not files[o.name]:
                con.execute(empty_view(o.name))
            else:
                con.execute(o.text)
        except duckdb.IOException as e:   # a file the snapshot names is gone: never an empty view
            gone = snapshot.gone_error() if snapshot is not None else None
            if gone is not None:
                raise gone from None
            raise StoreError(f"view {o.name}: a file of this snapshot cannot be read ({str(e).strip()}); "
                             f"it was deleted (by `dmstore vacuum` or by hand) — read a newer version "
                             f"(see `dmstore log`)") from None
        except duckdb.Error as e:
            raise QueryError(f"sql/{o.name}.sql does not register: {str(e).strip()}") from None


def attach_file(con, name: str, path) -> str:
    """Expose a CSV or Parquet file as relation `name` on `con`; returns its absolute path."""
    p = Path(path)
    if not name.isidentifier():
        raise InputError(f"tables: the name {name!r} must be an identifier", params=("tables",))
    if name in catalog.objects():
        raise InputError(f"tables: {name!r} is the name of a store relation or analytic; attach the file "
                         f"under another name", params=("tables",))
    if not p.exists():
        raise InputError(f"tables: {name}={path}: no such file", params=("tables",))
    try:
        rel = con.read_parquet(str(p)) if p.suffix in (".parquet", ".pq") else con.read_csv(str(p))
        rel.to_view(name)
    except duckdb.Error as e:
        raise InputError(f"tables: {name}={path}: cannot read it ({str(e).strip()})", params=("tables",)) from None
    return str(p.resolve())


def connect(store, threads: int | None = None, as_of: int | None = None, tables: dict | None = None,
            sandbox: bool = True, memory_limit: str | None = None, udfs=()) -> duckdb.DuckDBPyConnection:
    """In-memory DuckDB connection over one snapshot of the store (a path or a `Store`; the
    latest snapshot, or version `as_of`): every view reads that snapshot's explicit file list.
    `tables` (name → CSV/Parquet file) become extra relations. With `sandbox` (the default) the
    connection can read only those files, loads no extension, spills only into the store's
    `.tmp/`, and its configuration is locked. `threads` and `memory_limit` (e.g. '4GB'; default
    for a sandboxed connection: half the machine's memory) cap it. The Python UDFs of `udfs`
    (callables or 'module:function') join the built-in ones (`dmstore.engine.udfs`)."""
    st = open_state(store, "r", as_of)
    snap = st.snapshot()
    root = Path(st.root).resolve()
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                             "autoload_known_extensions": False})
    con.execute("SET enable_progress_bar = false")   # it would print into stdout (query --csv)
    # a store's files are immutable (units are written once under unique names): footers may be
    # cached; a point read of a train-major copy (10⁹ weights, 7,600 row groups) 150 → 45 ms
    con.execute("SET parquet_metadata_cache = true")
    if memory_limit is None and sandbox:
        memory_limit = DEFAULT_MEMORY_LIMIT
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if memory_limit:
        try:
            con.execute("SET memory_limit = ?", [str(memory_limit)])
        except duckdb.Error as e:
            raise InputError(f"memory_limit {memory_limit!r}: {str(e).strip()} (e.g. '4GB')",
                             params=("memory_limit",)) from None
    con.execute("SET VARIABLE dmstore_root = ?", [str(root)])
    con.execute("SET VARIABLE dmstore_version = ?", [snap.version])
    files = {}
    for rel in schema.TABLES:
        if rel != "examples":
            files[rel] = snap.files(rel, root)
            con.execute(f"SET VARIABLE dmstore_files_{rel} = ?::VARCHAR[]", [files[rel]])
    allowed = [str(root / P.EXAMPLES)] + [f for fs in files.values() for f in fs]
    for name, path in (tables or {}).items():
        allowed.append(attach_file(con, name, path))
    register_udfs(con, st.d, udfs)
    register(con, files, snap)
    if sandbox:
        lock_down(con, allowed, root / P.TMP)
    return con
