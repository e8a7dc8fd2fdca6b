"""Read-only queries over a store: parsed by DuckDB (syntax errors in DuckDB's words),
classified as read-only by sqlglot and by DuckDB's statement types, run on a sandboxed
connection, and streamed out (`formats`). Internal queries (`sql/internal/`) run here too."""
from __future__ import annotations

import contextlib
import re
from pathlib import Path

import duckdb

from ..errors import InputError, NotFoundError, QueryError, StoreError
from ..store.fits import not_found
from ..store.state import open_state
from . import catalog
from .connect import connect
from .formats import write_relation
from .sandbox import check_read_only

_READ_TYPES = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


def query_error(e: duckdb.Error, store=None) -> QueryError | StoreError:
    """A DuckDB error as a QueryError that says how to fix it (a StoreError when the cause is
    a file of the snapshot that is gone)."""
    msg = str(e).strip()
    if store is not None:
        try:
            gone = open_state(store).snapshot().gone_error()
        except StoreError:
            gone = None
        if gone is not None:
            return gone
    if isinstance(e, duckdb.PermissionException) or "disabled by configuration" in msg:
        return QueryError(f"{msg}. dmstore queries are sandboxed: they read the store's own files and the "
                          f"files attached as tables (--attach NAME=FILE), nothing else")
    if "configuration has been locked" in msg:
        return QueryError(f"{msg}. dmstore queries are sandboxed: settings, profiling and logging "
                          f"cannot be changed from a query")
    m = re.search(r"Table with name (\w+) does not exist", msg)
    if m and m.group(1) not in catalog.objects():
        return QueryError(f"{msg.splitlines()[0]}. To read a file as relation {m.group(1)}, attach it: "
                          f"--attach {m.group(1)}=FILE (tables={{'{m.group(1)}': FILE}} in Python)")
    m = re.search(r"Values were not provided for the following (?:prepared statement )?parameters: (.+)", msg)
    if m:
        names = [x.strip() for x in m.group(1).split(",")]
        return QueryError(f"the query uses parameter(s) {', '.join('$' + n for n in names)} without a value: "
                          f"give each with -p NAME VALUE, e.g. -p {names[0]} 1 (params={{'{names[0]}': 1}} "
                          f"in Python)")
    return QueryError(msg)


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


def check_fit_ids(con, sql: str, params: dict | None = None) -> None:
    """Raise NotFoundError when an analytic whose first parameter is a fit (topk_neighbors(99, …),
    dm_predict($f, …)) is called with a fit id the store does not hold, listing the ones it does
    (such a call would otherwise return no rows)."""
    import sqlglot
    from sqlglot import exp
    fit_macros = {o.name for o in catalog.macros() if o.params and o.params[0][0] == "fit"}
    calls = []
    for tree in sqlglot.parse(sql, read="duckdb"):
        for f in (tree.find_all(exp.Anonymous) if tree is not None else ()):
            if f.name.lower() in fit_macros and f.expressions:
                a = f.expressions[0]
                if isinstance(a, exp.Literal) and a.is_int:
                    calls.append((f.name, int(a.this)))
                elif isinstance(a, exp.Placeholder) and params and a.name in params:
                    with contextlib.suppress(TypeError, ValueError):
                        calls.append((f.name, int(params[a.name])))
    if not calls:
        return
    have = dict(run(con, "fit_estimators").fetchall())
    for name, fid in calls:
        if fid not in have:
            e = not_found(fid, have)
            raise NotFoundError(f"{name}({fid}, …): {e}", params=e.params)


def read_relation(store, sql: str, params: dict | None = None, tables: dict | None = None,
                  as_of: int | None = None, con=None, **connect_kw):
    """A lazy DuckDB relation for read-only `sql` (one or more statements; the last one gives
    the rows, as in DuckDB) with named parameters `$name` from `params` and extra relations
    `tables` (name → CSV/Parquet file, for macros that take a table such as
    dm_removal_effect), on a sandboxed connection over the store's snapshot (`as_of`: a past
    version; `connect_kw`: threads, memory_limit). Nothing is fetched yet."""
    con = con or connect(store, tables=tables, as_of=as_of, **connect_kw)
    try:
        stmts = con.extract_statements(sql)   # DuckDB's parser reports syntax errors
    except duckdb.Error as e:
        raise QueryError(str(e).strip()) from None
    if not stmts:
        raise QueryError("the query is empty")
    check_read_only(sql)
    check_fit_ids(con, sql, params)
    bad = [st for st in stmts if st.type not in _READ_TYPES]
    if bad:   # DuckDB's own parser agrees with sqlglot's, or the query does not run
        raise QueryError(f"only read statements run here; refused a {bad[0].type.name} statement")
    params = {k: _param_value(v) for k, v in (params or {}).items()}
    if len(stmts) > 1 and params:
        raise QueryError("params work with a single statement only; run the statements one by one",
                         params=("params",))
    try:
        rel = con.sql(sql if len(stmts) > 1 else stmts[0].query, params=params or None)
    except duckdb.Error as e:
        raise query_error(e, store) from None
    if rel is None:
        raise QueryError("the statement returns no rows")
    return rel


def query(store, sql: str, params: dict | None = None, con=None, tables: dict | None = None,
          as_of: int | None = None):
    """Run read-only `sql` (see `read_relation`) and return its rows as a pyarrow Table. Writes are
    refused (QueryError)."""
    rel = read_relation(store, sql, params, tables, as_of, con)
    try:
        return rel.to_arrow_table()
    except duckdb.Error as e:
        raise query_error(e, store) from None


def stream(rel, fmt: str, out=None, max_rows: int = 200, store=None) -> int | None:
    """Write relation `rel` as `fmt` to `out` (stdout when None or '-') as it streams; a failure
    midway removes the partial file (never a file that could not even be opened). Returns the
    row count (None for a table preview)."""
    to_file = out not in (None, "-")
    existed = to_file and Path(out).exists()
    try:
        return write_relation(rel, fmt, out, max_rows)
    except BaseException as e:
        if to_file and Path(out).is_file() and not (existed and isinstance(e, OSError)):
            Path(out).unlink(missing_ok=True)
        if isinstance(e, duckdb.Error):
            raise query_error(e, store) from None
        if isinstance(e, OSError):
            raise InputError(f"output {out}: cannot write it ({e.strerror or e}); give a writable file path",
                             params=("out",)) from None
        raise


def run(con, query_name: str, /, **params):
    """The relation of internal query `sql/internal/<query_name>.sql` with `$params` on `con`."""
    return con.sql(catalog.internal(query_name), params=params or None)
