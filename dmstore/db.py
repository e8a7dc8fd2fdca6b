"""DuckDB access to a store: every `sql/*.sql` file (views, macros) registered on connect."""
from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

import duckdb

from . import schema
from .errors import InputError, QueryError, StoreError

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


_SIGNATURE = re.compile(r"^--\s*(view|macro|table macro):\s*(.+)$", re.M)


def catalog() -> list[dict]:
    """Every view and macro of `sql/`: kind, name, signature, parameters, columns (or returns)
    and a one-line purpose, from each file's header comment."""
    out = []
    for name, text in sql_files().items():
        m = _SIGNATURE.search(text)
        if not m:
            continue
        header = [line[2:].strip() for line in text.splitlines() if line.startswith("--")]
        fields, purpose, key = {}, [], None
        for line in header[1:]:
            k = re.match(r"^(Parameters|Columns|Returns|Requires):\s*(.*)$", line)
            if k:
                key = k.group(1).lower()
                fields[key] = k.group(2)
            elif key:
                fields[key] += " " + line
            else:
                purpose.append(line)
        first = " ".join(purpose)
        first = first.split(". ")[0].rstrip(".") + "." if first else ""
        out.append({"kind": m.group(1), "name": name, "signature": m.group(2).strip(), "purpose": first,
                    "parameters": fields.get("parameters", "none"),
                    "columns": fields.get("columns") or fields.get("returns", ""),
                    "requires": fields.get("requires")})
    return out


def register(con: duckdb.DuckDBPyConnection, files: dict | None = None) -> None:
    """Run every SQL file on `con`, in dependency order (a file whose dependencies are not yet
    defined is retried after the others). A file with a `-- Requires: rel.col` header is left
    out when the store's `rel` has no column `col`. A relation whose file list (`files`) is empty
    gets a typed empty view."""
    pending = dict(sql_files())
    for name, fs in (files or {}).items():
        if not fs and name in pending:
            con.execute(_empty_view(name))
            del pending[name]
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
            except duckdb.IOException as e:   # a file the snapshot names is gone: never an empty view
                raise StoreError(f"view {name}: a file of this snapshot cannot be read ({str(e).strip()}); "
                                 f"it was deleted (by `dmstore vacuum` or by hand) — read a newer version "
                                 f"(see `dmstore log`)") from None
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


def connect(store, threads: int | None = None, as_of: int | None = None, tables: dict | None = None,
            sandbox: bool = True) -> duckdb.DuckDBPyConnection:
    """In-memory DuckDB connection over one snapshot of the store (the latest, or version
    `as_of`): every view reads that snapshot's explicit file list. `tables` (name → CSV/Parquet
    file) become extra relations. With `sandbox` (the default) the connection can read only those
    files (`allowed_paths`), loads no extension, and its configuration is locked."""
    from .store import Store
    if isinstance(store, Store) and (as_of is None or as_of == store.as_of):
        st = store
    else:
        st = Store.open(store.root if isinstance(store, Store) else store, "r", as_of=as_of)
    snap = st.snapshot()
    root = Path(st.root).resolve()
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                             "autoload_known_extensions": False})
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute("SET VARIABLE dmstore_root = ?", [str(root)])
    con.execute("SET VARIABLE dmstore_version = ?", [snap.version])
    files = {}
    for rel in schema.TABLES:
        if rel != "examples":
            files[rel] = snap.files(rel, root)
            con.execute(f"SET VARIABLE dmstore_files_{rel} = ?::VARCHAR[]", [files[rel]])
    allowed = [str(root / "examples.parquet")] + [f for fs in files.values() for f in fs]
    for name, path in (tables or {}).items():
        allowed.append(attach_file(con, name, path))
    register(con, files)
    if sandbox:
        con.execute("SET allowed_paths = ?::VARCHAR[]", [allowed])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    return con


def query_error(e: duckdb.Error) -> QueryError:
    """A DuckDB error as a QueryError that says how to fix it."""
    msg = str(e).strip()
    if isinstance(e, duckdb.PermissionException) or "disabled by configuration" in msg:
        return QueryError(f"{msg}. dmstore queries are sandboxed: they read the store's own files and "
                          f"the files given with --attach NAME=FILE, nothing else")
    if "configuration has been locked" in msg:
        return QueryError(f"{msg}. dmstore queries are sandboxed: settings, profiling and logging "
                          f"cannot be changed from a query")
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


def read_relation(store, sql: str, params: dict | None = None, tables: dict | None = None,
             as_of: int | None = None, con=None):
    """A lazy DuckDB relation for read-only `sql` (one or more statements; the last one gives
    the rows) with named parameters `$name` from `params` and extra relations `tables` (name →
    CSV/Parquet file, for macros that take a table such as dm_removal_effect), on a sandboxed
    connection over the store's snapshot (`as_of`: a past version). Nothing is fetched yet."""
    from .readonly import check_read_only
    n = check_read_only(sql)
    con = con or connect(store, tables=tables, as_of=as_of)
    params = {k: _param_value(v) for k, v in (params or {}).items()}
    try:
        stmts = con.extract_statements(sql)
        bad = [st for st in stmts if st.type not in _READ_TYPES]
        if bad:   # DuckDB's own parser agrees with sqlglot's, or the query does not run
            raise QueryError(f"only read statements run here; refused a {bad[0].type.name} statement")
        if n > 1 and params:
            raise QueryError("parameters (-p) work with a single statement only")
        for st in stmts[:-1]:
            con.execute(st.query)
        rel = con.sql(stmts[-1].query, params=params or None)
    except duckdb.Error as e:
        raise query_error(e) from None
    if rel is None:
        raise QueryError("the statement returns no rows")
    return rel


_READ_TYPES = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


def query(store, sql: str, params: dict | None = None, con=None, tables: dict | None = None,
          as_of: int | None = None):
    """Run read-only `sql` (see `read_relation`) and return its rows as a pyarrow Table. Writes are
    refused (QueryError)."""
    rel = read_relation(store, sql, params, tables, as_of, con)
    try:
        return rel.to_arrow_table()
    except duckdb.Error as e:
        raise query_error(e) from None


def stream(rel, fmt: str, out=None, max_rows: int = 200) -> int | None:
    """Write relation `rel` as `fmt` to `out` (stdout when None or '-') as it streams; a
    failure midway removes the partial file. Returns the row count (None for a table preview)."""
    from .output import write_relation
    try:
        return write_relation(rel, fmt, out, max_rows)
    except OSError as e:
        raise InputError(f"-o {out}: cannot write it ({e.strerror or e}); give a writable file path") from None
    except duckdb.Error as e:
        if out not in (None, "-"):
            Path(out).unlink(missing_ok=True)
        raise query_error(e) from None
    except BaseException:
        if out not in (None, "-"):
            Path(out).unlink(missing_ok=True)
        raise


def attach_file(con, name: str, path) -> str:
    """Expose a CSV or Parquet file as relation `name` on `con`; returns its absolute path."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"--attach {name}={path}: no such file")
    if not name.isidentifier():
        raise InputError(f"--attach {name}=…: the name must be an identifier")
    try:
        rel = con.read_parquet(str(p)) if p.suffix in (".parquet", ".pq") else con.read_csv(str(p))
        rel.to_view(name)
    except duckdb.Error as e:
        raise InputError(f"--attach {name}={path}: cannot read it ({str(e).strip()})") from None
    return str(p.resolve())


def export(store, out, relation: str | None = None, sql: str | None = None, fmt: str = "parquet",
           partition_by: list[str] | None = None, params: dict | None = None, overwrite: bool = False,
           as_of: int | None = None, tables: dict | None = None) -> int:
    """Write a relation (or read-only `sql`) to `out` (a file; '-' is stdout) as
    parquet|csv|json|jsonl, streaming; Parquet may be partitioned into a directory by columns.
    Refuses any output inside the store. Returns the row count."""
    from .output import FORMATS, write_partitioned
    from .store import Store
    if (relation is None) == (sql is None):
        raise QueryError("give a relation or --sql, not both")
    if relation is not None and relation not in _all_relations():
        raise QueryError(f"unknown relation {relation!r}; one of {', '.join(_all_relations())}")
    if fmt not in FORMATS or fmt == "table":
        raise QueryError(f"--format must be parquet, csv, json or jsonl, got {fmt!r}")
    if partition_by and fmt != "parquet":
        raise QueryError("--partition-by works with --format parquet only")
    root = Path(store.root if isinstance(store, Store) else store).resolve()
    if out != "-":
        target = Path(out).resolve()
        if target == root or root in target.parents or target in root.parents:
            where = "a folder that contains the store" if target in root.parents else "inside the store"
            raise InputError(f"output {out}: that is {where} {root}; an export never writes (or, with "
                             f"overwrite, deletes) the store. Export to a path outside it")
    elif partition_by:
        raise QueryError("--partition-by writes a directory; give -o DIR, not -")
    if sql is not None:
        from .readonly import check_read_only
        if check_read_only(sql) != 1:
            raise QueryError("--sql takes exactly one SELECT statement")
    rel = read_relation(store, sql if sql is not None else f'SELECT * FROM "{relation}"', params,
                        tables, as_of)
    if partition_by:
        try:
            return write_partitioned(rel, Path(out), list(partition_by), overwrite)
        except duckdb.Error as e:
            raise query_error(e) from None
    return stream(rel, fmt, out)


def _all_relations() -> list[str]:
    return view_names()
