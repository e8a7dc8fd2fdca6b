"""The store's SQL in other dialects (sqlglot), refusing any translation that would not be
faithful (`checks`); Spark gets one runnable script of relations and analytics (`spark`)."""
from __future__ import annotations

import re
from pathlib import Path

import sqlglot
from sqlglot.errors import ErrorLevel, UnsupportedError

from ..engine import catalog
from ..engine.connect import empty_view
from ..engine.udfs import BUILTINS
from ..errors import InputError, QueryError
from ..storage import paths as P
from ..storage import schema
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


def _substitute(text: str, root: str, file_lists: dict) -> str:
    text = text.replace("getvariable('dmstore_root')", f"'{root}'")
    return re.sub(r"getvariable\('dmstore_files_(\w+)'\)", lambda m: file_lists.get(m.group(1), "[]"), text)


def _relation_text(obj, root: str, file_lists: dict) -> str:
    """`obj`'s SQL over the snapshot's files; a relation with no file in the snapshot (one an
    older store never wrote, e.g. weights_by_train) is a typed empty view."""
    if (obj.is_view and obj.name in schema.TABLES and f"dmstore_files_{obj.name}" in obj.text
            and file_lists.get(obj.name, "[]") == "[]"):
        return empty_view(obj.name)
    return _substitute(obj.text, root, file_lists)


def _columns(root: Path) -> dict[str, list[str]]:
    """relation → its columns in this store (examples: the file's own; the rest: their schemas)."""
    import pyarrow.parquet as pq

    from ..storage.schema import arrow_schema
    from ..storage.units import RELATIONS
    out = {"examples": pq.read_schema(root / P.EXAMPLES).names}
    out.update({rel: arrow_schema(rel).names for rels in RELATIONS.values() for rel in rels})
    return out


def _duckdb_script(snap, root: str, file_lists: dict, names: list[str] | None, columns: dict) -> str:
    """One script for a plain DuckDB (no dmstore installed): every relation in dependency order,
    then every macro (in_mask and the analytics), over the snapshot's files at absolute paths;
    `names` keeps those objects and what they read. dmstore's Python UDFs become NULL stand-ins
    (so eval_kendall's kendall and estimator_comparison's kendall and CI are NULL there)."""
    objs = catalog.objects()
    unknown = [n for n in names or [] if n not in objs]
    if unknown:
        raise InputError(f"unknown view or macro {unknown[0]!r}; one of {', '.join(objs)}", params=("views",))
    absent = [n for n in names or [] if not catalog.applies(objs[n], columns)]
    if absent:
        rel, col = objs[absent[0]].requires
        raise InputError(f"{absent[0]} needs {rel}.{col}, which this store's {rel} does not have", params=("views",))
    keep = {n for n in (catalog.needs(names) if names else objs) if catalog.applies(objs[n], columns)}
    parts = [f"-- dmstore store snapshot version {snap.version}, files under {root}",
             "-- Runs as is in a plain DuckDB (duckdb -init this.sql, or con.execute(text)): relations in",
             "-- dependency order, then the macros. dmstore's Python UDFs (spearman, kendall_tau, bootstrap_ci,",
             "-- mask_of) are NULL stand-ins here; dmstore.connect gives the real ones."]
    body = " ".join(objs[n].body for n in keep)
    for name, b in BUILTINS.items():
        if re.search(rf"\b{name}\s*\(", body):
            parts.append(b.standin())
    for name in objs:   # dependency order: views, then macros
        if name in keep:
            parts.append(_relation_text(objs[name], root, file_lists).rstrip().rstrip(";") + ";")
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

        from . import spark_sql as spark
        return spark.script(snap, location or root_path.as_uri(),
                            pq.read_schema(root_path / P.EXAMPLES).names, views)
    root = str(root_path).replace("'", "''")
    quote = lambda f: "'" + f.replace("'", "''") + "'"  # noqa: E731
    file_lists = {rel: "[" + ", ".join(quote(f) for f in snap.files(rel, root_path)) + "]"
                  for rel in {r for e in snap.units.values() for r in e["relations"]}}
    if dialect == "duckdb":
        return _duckdb_script(snap, root, file_lists, views, _columns(root_path))
    objs = {o.name: o for o in catalog.views()}
    wanted = views or list(objs)
    unknown = [v for v in wanted if v not in objs]
    if unknown:
        raise InputError(f"unknown view {unknown[0]!r}; views are {', '.join(objs)}", params=("views",))
    out, bad = [], []
    for v in [name for name in objs if name in wanted]:   # dependency order
        text = _relation_text(objs[v], root, file_lists)
        header = "\n".join(line for line in text.splitlines() if line.startswith("--"))
        try:
            out.append(f"{header}\n{translate(catalog.strip_comments(text), dialect)};")
        except NoFaithfulTranslation as e:
            bad.append(f"{v}: {e}")
    if bad:
        raise QueryError(f"these views do not translate faithfully to {dialect} (DuckDB-only constructs): "
                         + "; ".join(bad) + ". Choose views, or use the duckdb dialect", params=("views",))
    return "\n\n".join(out) + "\n"
