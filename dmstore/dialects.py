"""The store's views in other SQL dialects (sqlglot), refusing any translation that would not be
faithful: sqlglot passes DuckDB-only functions through or rewrites them silently."""
from __future__ import annotations

import re
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, UnsupportedError

from .db import _HEADER, sql_files
from .errors import InputError, QueryError

DIALECTS = ("duckdb", "spark", "postgres", "bigquery")
# DuckDB functions with no faithful equivalent that sqlglot would pass through or mangle.
_DUCKDB_ONLY = {"get_bit", "list_distance", "generate_subscripts", "query_table", "list_contains",
                "getvariable", "bit_count", "list_sort"}
# The same, where sqlglot parses them into typed nodes (bit order, list semantics differ).
_TYPED_DUCKDB_ONLY = {"getbit": "get_bit()", "listdistance": "list_distance()",
                      "generatesubscripts": "generate_subscripts()", "bitcount": "bit_count()"}
_NO_PARQUET = {"postgres", "bigquery"}  # no reading Parquet files from SQL


def _problems(tree: exp.Expression, dialect: str) -> list[str]:
    found = []
    for node in tree.walk():
        if isinstance(node, exp.Anonymous) and node.name.lower() in _DUCKDB_ONLY:
            found.append(f"{node.name.lower()}()")
        elif type(node).__name__.lower() in _TYPED_DUCKDB_ONLY:
            found.append(_TYPED_DUCKDB_ONLY[type(node).__name__.lower()])
        elif isinstance(node, (exp.ArgMax, exp.ArgMin)) and node.args.get("count") is not None:
            found.append(f"{'max_by' if isinstance(node, exp.ArgMax) else 'min_by'}(…, k)")
        elif isinstance(node, exp.ArrayAgg) and node.find(exp.Order) is not None:
            found.append("list(… ORDER BY …)")
        elif isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.BIT):
            found.append("CAST(… AS BIT)")
        elif isinstance(node, exp.Unnest):
            found.append("unnest()")
        elif isinstance(node, exp.Struct):
            found.append("struct literal {…}")
        elif dialect in _NO_PARQUET and (type(node).__name__ == "ReadParquet" or (
                isinstance(node, exp.Anonymous) and node.name.lower() == "read_parquet")):
            found.append("read_parquet()")
    return sorted(set(found))


def view_sql(store_root, dialect: str, views: list[str] | None = None, as_of: int | None = None,
             location: str | None = None) -> str:
    """CREATE VIEW statements of the store's views in `dialect`, reading the files of the store's
    latest snapshot (or version `as_of`) at their absolute paths. Raises QueryError naming every
    (view, function) that would not translate. For Spark: the whole script of
    `spark_sql.script` (relations, functions and parameterized analytics) over the files at
    `location` (a URI; default the store's directory); `views` then selects analytics."""
    if dialect not in DIALECTS:
        raise InputError(f"--dialect must be one of {', '.join(DIALECTS)}, got {dialect!r}")
    if location and dialect != "spark":
        raise InputError("--location works with --dialect spark only")
    from .store import Store
    snap = Store.open(store_root, "r", as_of=as_of).snapshot()
    root_path = Path(store_root).resolve()
    if dialect == "spark":
        import pyarrow.parquet as pq
        from . import spark_sql
        return spark_sql.script(snap, location or root_path.as_uri(),
                                pq.read_schema(root_path / "examples.parquet").names, views)
    root = str(root_path).replace("'", "''")
    quote = lambda f: "'" + f.replace("'", "''") + "'"  # noqa: E731
    file_lists = {rel: "[" + ", ".join(quote(f) for f in snap.files(rel, root_path)) + "]"
                  for rel in {r for e in snap.units.values() for r in e["relations"]}}
    files = {}
    for name, text in sql_files().items():
        m = _HEADER.search(text)
        if m and m.group(1) == "view":
            files[m.group(2)] = text
    wanted = views or list(files)
    unknown = [v for v in wanted if v not in files]
    if unknown:
        raise InputError(f"unknown view {unknown[0]!r}; views are {', '.join(files)}")
    out, bad = [], []
    for v in wanted:
        text = files[v].replace("getvariable('dmstore_root')", f"'{root}'")
        text = re.sub(r"getvariable\('dmstore_files_(\w+)'\)", lambda m: file_lists.get(m.group(1), "[]"), text)
        body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
        header = "\n".join(line for line in text.splitlines() if line.startswith("--"))
        if dialect == "duckdb":
            out.append(f"{header}\n{body.strip()}")
            continue
        tree = sqlglot.parse_one(body, read="duckdb")
        probs = _problems(tree, dialect)
        try:
            sql = tree.sql(dialect=dialect, pretty=True, unsupported_level=ErrorLevel.RAISE)
        except UnsupportedError as e:
            probs.append(re.sub(r"\s+", " ", str(e)).strip())
            sql = None
        if probs:
            bad.append(f"{v}: {', '.join(probs)}")
            continue
        out.append(f"{header}\n{sql};")
    if bad:
        raise QueryError(f"these views do not translate faithfully to {dialect} (DuckDB-only constructs): "
                         + "; ".join(bad) + ". Choose views with --view, or use --dialect duckdb")
    return "\n\n".join(out) + "\n"
