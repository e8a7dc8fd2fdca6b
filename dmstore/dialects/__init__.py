"""The store's SQL in other dialects (sqlglot), refusing any translation that would not be
faithful (`checks`); Spark gets one runnable script of relations and analytics (`spark`)."""
from __future__ import annotations

import re
from pathlib import Path

import sqlglot
from sqlglot.errors import ErrorLevel, UnsupportedError

from ..engine import catalog
from ..errors import InputError, QueryError
from ..storage import paths as P
from ..store.state import open_state
from .checks import problems

DIALECTS = ("duckdb", "spark", "postgres", "bigquery")

__all__ = ["DIALECTS", "view_sql", "translate", "problems", "NoFaithfulTranslation"]


class NoFaithfulTranslation(QueryError):
    """A DuckDB statement with constructs that would not translate faithfully to a dialect."""


def translate(sql: str, dialect: str) -> str:
    """DuckDB `sql` in `dialect` (sqlglot, pretty), or NoFaithfulTranslation naming every
    DuckDB-only construct and every construct sqlglot cannot write in `dialect`."""
    if dialect == "duckdb":
        return sql
    tree = sqlglot.parse_one(sql, read="duckdb")
    probs = problems(tree, dialect)
    try:
        out = tree.sql(dialect=dialect, pretty=True, unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as e:
        probs.append(re.sub(r"\s+", " ", str(e)).strip())
    if probs:
        raise NoFaithfulTranslation(", ".join(probs))
    return out


# plain-DuckDB stand-ins for dmstore's Python UDFs (engine.udfs): NULL of the UDF's type
_UDF_STANDINS = {"spearman": ("a, b", "NULL::DOUBLE"), "kendall_tau": ("a, b", "NULL::DOUBLE"),
                 "bootstrap_ci": ("v, level, n_boot, seed", "NULL::STRUCT(lo DOUBLE, hi DOUBLE)"),
                 "mask_of": ("ids", "NULL::BLOB")}


def _substitute(text: str, root: str, file_lists: dict) -> str:
    text = text.replace("getvariable('dmstore_root')", f"'{root}'")
    return re.sub(r"getvariable\('dmstore_files_(\w+)'\)", lambda m: file_lists.get(m.group(1), "[]"), text)


def _duckdb_script(snap, root: str, file_lists: dict, names: list[str] | None) -> str:
    """One script for a plain DuckDB (no dmstore installed): every relation in dependency order,
    then every macro (in_mask and the analytics), over the snapshot's files at absolute paths;
    `names` keeps those objects and what they read. dmstore's Python UDFs become NULL stand-ins
    (so eval_kendall's kendall and estimator_comparison's kendall and CI are NULL there)."""
    objs = catalog.objects()
    unknown = [n for n in names or [] if n not in objs]
    if unknown:
        raise InputError(f"unknown view or macro {unknown[0]!r}; one of {', '.join(objs)}", params=("views",))
    keep = catalog.needs(names) if names else set(objs)
    parts = [f"-- dmstore store snapshot version {snap.version}, files under {root}",
             "-- Runs as is in a plain DuckDB (duckdb -init this.sql, or con.execute(text)): relations in",
             "-- dependency order, then the macros. dmstore's Python UDFs (spearman, kendall_tau, bootstrap_ci,",
             "-- mask_of) are NULL stand-ins here; dmstore.connect gives the real ones."]
    body = " ".join(objs[n].body for n in keep)
    for name, (args, value) in _UDF_STANDINS.items():
        if re.search(rf"\b{name}\s*\(", body):
            parts.append(f"CREATE OR REPLACE MACRO {name}({args}) AS {value};")
    for name in objs:   # dependency order: views, then macros
        if name in keep:
            parts.append(_substitute(objs[name].text, root, file_lists).rstrip().rstrip(";") + ";")
    return "\n\n".join(parts) + "\n"


def view_sql(store, dialect: str, views: list[str] | None = None, as_of: int | None = None,
             location: str | None = None) -> str:
    """CREATE VIEW statements of the store's views in `dialect`, in dependency order, reading the
    files of the store's latest snapshot (or version `as_of`) at their absolute paths. Raises
    QueryError naming every (view, function) that would not translate. For Spark: the whole
    script of `spark.script` (relations, functions and parameterized analytics) over the files
    at `location` (a URI; default the store's directory); `views` then selects analytics."""
    if dialect not in DIALECTS:
        raise InputError(f"dialect must be one of {', '.join(DIALECTS)}, got {dialect!r}", params=("dialect",))
    if location and dialect != "spark":
        raise InputError("location works with dialect spark only", params=("location", "dialect"))
    st = open_state(store, "r", as_of)
    snap = st.snapshot()
    root_path = Path(st.root).resolve()
    if dialect == "spark":
        import pyarrow.parquet as pq

        from . import spark
        return spark.script(snap, location or root_path.as_uri(),
                            pq.read_schema(root_path / P.EXAMPLES).names, views)
    root = str(root_path).replace("'", "''")
    quote = lambda f: "'" + f.replace("'", "''") + "'"  # noqa: E731
    file_lists = {rel: "[" + ", ".join(quote(f) for f in snap.files(rel, root_path)) + "]"
                  for rel in {r for e in snap.units.values() for r in e["relations"]}}
    if dialect == "duckdb":
        return _duckdb_script(snap, root, file_lists, views)
    objs = {o.name: o for o in catalog.views()}
    wanted = views or list(objs)
    unknown = [v for v in wanted if v not in objs]
    if unknown:
        raise InputError(f"unknown view {unknown[0]!r}; views are {', '.join(objs)}", params=("views",))
    out, bad = [], []
    for v in [name for name in objs if name in wanted]:   # dependency order
        text = _substitute(objs[v].text, root, file_lists)
        header = "\n".join(line for line in text.splitlines() if line.startswith("--"))
        try:
            out.append(f"{header}\n{translate(catalog.strip_comments(text), dialect)};")
        except NoFaithfulTranslation as e:
            bad.append(f"{v}: {e}")
    if bad:
        raise QueryError(f"these views do not translate faithfully to {dialect} (DuckDB-only constructs): "
                         + "; ".join(bad) + ". Choose views, or use the duckdb dialect", params=("views",))
    return "\n\n".join(out) + "\n"
