"""The store's relations and analytics as Spark SQL text, from the same `sql/*.sql` files.

Every view and macro of `sql/` is transpiled by sqlglot (DuckDB → Spark) when that is faithful;
where it is not (top-k by `max_by(…, k)`, BIT, list functions, table arguments) a hand-written
variant `sql/spark/<name>.sql` holds the Spark text, and tests prove both give equal rows.
Table macros become parameterized queries with Spark's named parameters (`:fit`, `:k`); a macro
that calls another (`topk_neighbors` → `dm_weights`) gets the callee inlined as a subquery.
Relations read exactly the files of one snapshot, as one Hadoop glob per relation
(`LOC/batches/{u1,u2}/margins.parquet`) under any URI Spark reads (file://, hdfs://, s3a://).
Nothing here imports pyspark; `dmstore.spark` runs the text.
"""
from __future__ import annotations

import re
from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from ..engine import catalog
from ..engine.catalog import MACRO as _MACRO
from ..engine.catalog import TABLE_ARG as _TABLE_ARG
from ..engine.catalog import SqlObject, strip_comments
from ..errors import QueryError
from ..storage import paths as P
from ..storage import schema
from .checks import problems

_FILES = re.compile(r"read_parquet\(getvariable\('dmstore_files_(\w+)'\)[^)]*\)")
_EXAMPLES = "read_parquet(getvariable('dmstore_root') || '/" + P.EXAMPLES + "')"

FUNCTIONS = ("in_mask",)   # macros that are Spark SQL functions (sql/spark/<name>.sql), not queries


class NoSparkEquivalent(QueryError):
    """A view or macro whose DuckDB text does not transpile faithfully and has no Spark variant."""


def analytics() -> dict[str, SqlObject]:
    """Every macro of the catalog (name → SqlObject), each after the macros it calls."""
    return {o.name: o for o in catalog.macros()}


def _sources(text: str) -> str:
    """DuckDB text with each snapshot file list replaced by its Spark source view."""
    return _FILES.sub(lambda m: f"dmstore_files_{m.group(1)}", text.replace(_EXAMPLES, "dmstore_files_examples"))


def _check(tree: exp.Expression, name: str) -> None:
    probs = problems(tree, "spark")
    if probs:
        raise NoSparkEquivalent(f"{name}: no faithful Spark translation of {', '.join(probs)} and no "
                                f"sql/spark/{name}.sql variant")


def _placeholders(tree: exp.Expression, params) -> exp.Expression:
    names = {p for p, _ in params}

    def sub(node):
        if isinstance(node, exp.Column) and not node.table and node.name in names:
            return exp.Placeholder(this=node.name)
        return node
    return tree.transform(sub)


def _arg_map(a: SqlObject, args: list) -> dict:
    """Parameter name → argument expression of a call `a(args…)` inside another macro."""
    given, pos = {}, 0
    for arg in args:
        if isinstance(arg, (exp.PropertyEQ, exp.Kwarg, exp.EQ)) and isinstance(arg.this, (exp.Identifier, exp.Column)):
            given[arg.this.name] = arg.expression
        else:
            given[a.params[pos][0]] = arg
            pos += 1
    out = {}
    for p, default in a.params:
        if p in given:
            out[p] = given[p]
        elif default is not None:
            out[p] = sqlglot.parse_one(default, read="duckdb")
        else:
            raise QueryError(f"call of {a.name} lacks argument {p}")
    return out


def _inline(tree: exp.Expression) -> exp.Expression:
    """Replace every call of a table macro (FROM name(args)) by its Spark query as a subquery."""
    known = analytics()

    def sub(node):
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Anonymous) and node.this.name in known:
            callee = known[node.this.name]
            args = _arg_map(callee, list(node.this.expressions))
            body = query_tree(callee.name).copy()
            body = body.transform(lambda n: args[n.name].copy()
                                  if isinstance(n, exp.Placeholder) and n.name in args else n)
            alias = node.alias or callee.name
            return exp.Subquery(this=body, alias=exp.TableAlias(this=exp.to_identifier(alias)))
        return node
    return tree.transform(sub)


@lru_cache(maxsize=None)
def query_tree(name: str) -> exp.Expression:
    """The Spark query (sqlglot tree, named parameters as placeholders) of analytic `name`."""
    a = catalog.get(name)
    if a.spark is not None:
        tree = sqlglot.parse_one(a.spark, read="spark")
    else:
        body = a.text[_MACRO.search(a.text).end():]
        body = strip_comments(_sources(_TABLE_ARG.sub(lambda m: f"__table_{m.group(1)}", body)))
        if a.kind == "macro":   # a scalar macro: SELECT its expression
            body = f"SELECT {body} AS {name}"
        tree = sqlglot.parse_one(body, read="duckdb")
        _check(tree, name)
        tree = _placeholders(tree, a.params)
    return _inline(tree)


def _to_spark(tree: exp.Expression) -> str:
    sql = tree.sql(dialect="spark", pretty=True, unsupported_level=ErrorLevel.RAISE)
    return re.sub(r"`?__table_(\w+)`?", r"IDENTIFIER(:\1)", sql)


def analytic_sql(name: str) -> str:
    """Spark SQL text of analytic `name`, with its parameters as named markers (`:fit`)."""
    return _to_spark(query_tree(name))


def view_sql(name: str) -> str:
    """`CREATE OR REPLACE TEMPORARY VIEW name AS …` of relation `name` in Spark SQL."""
    o = catalog.get(name)
    if o.spark is not None:
        query = o.spark
    else:
        body = re.split(r"\bAS\b", strip_comments(_sources(o.text)), maxsplit=1, flags=re.I)[1]
        tree = sqlglot.parse_one(body, read="duckdb")
        _check(tree, name)
        query = _to_spark(_inline(tree))
    return f"CREATE OR REPLACE TEMPORARY VIEW {name} AS\n{query}"


def functions_sql() -> list[str]:
    """Spark SQL functions the relations and analytics use (`in_mask`)."""
    return [catalog.get(f).spark for f in FUNCTIONS]


def glob(files: list[str], location: str) -> str:
    """One Hadoop glob naming exactly `files` (paths relative to the store) under `location`."""
    groups: dict[tuple, list] = {}
    for f in files:
        head, unit, leaf = f.split("/")
        groups.setdefault((head, leaf), []).append(unit)
    parts = [f"{head}/{{{','.join(units)}}}/{leaf}" if len(units) > 1 else f"{head}/{units[0]}/{leaf}"
             for (head, leaf), units in sorted(groups.items())]
    return f"{location.rstrip('/')}/" + (parts[0] if len(parts) == 1 else "{" + ",".join(parts) + "}")


def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def source_sql(snapshot, location: str) -> list[str]:
    """One temporary view `dmstore_files_<relation>` per table, over the snapshot's files at
    `location` (a typed empty view when the relation has no file yet)."""
    out = [f"CREATE OR REPLACE TEMPORARY VIEW dmstore_files_examples USING parquet "
           f"OPTIONS (path {_quote(location.rstrip('/') + '/examples.parquet')})"]
    for rel in schema.TABLES:
        if rel == "examples":
            continue
        files = [p + f"/{rel}.parquet" for p in sorted(snapshot.units) if rel in snapshot.units[p]["relations"]]
        if files:
            out.append(f"CREATE OR REPLACE TEMPORARY VIEW dmstore_files_{rel} USING parquet "
                       f"OPTIONS (path {_quote(glob(files, location))}, mergeSchema 'true')")
        else:
            cols = ", ".join(f"CAST(NULL AS {schema.sql_type(c['type'], 'spark')}) AS `{c['name']}`"
                             for c in schema.table_spec(rel)["columns"])
            out.append(f"CREATE OR REPLACE TEMPORARY VIEW dmstore_files_{rel} AS SELECT {cols} WHERE false")
    return out


def relation_names() -> list[str]:
    """Every relation (view of `sql/`), each after the relations its query reads (Spark resolves
    a temporary view's relations when it is created)."""
    return catalog.view_names()


def available(name: str, example_columns) -> bool:
    """Whether analytic or view `name` applies to a store whose examples have these columns."""
    return catalog.applies(catalog.get(name), {"examples": list(example_columns)})


def script(snapshot, location: str, example_columns, names: list[str] | None = None) -> str:
    """One Spark SQL script: source views, functions, every relation as a temporary view, then
    every analytic as a parameterized query (named parameters; run each with
    `spark.sql(text, args={...})`). `names` restricts the relations and analytics printed to
    those named and the relations they read."""
    known = set(analytics()) | set(relation_names())
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        raise QueryError(f"unknown view or macro {unknown[0]!r}; one of {', '.join(sorted(known))}")
    parts = [f"-- dmstore store snapshot version {snapshot.version}, files at {location}",
             "-- Relations: run these statements as they are (spark-sql -f, or spark.sql per statement).",
             "-- eval_kendall and estimator_comparison call Python UDFs (kendall_tau, bootstrap_ci): in PySpark\n"
             "-- run dmstore.spark.register_udfs(spark, d) first (dmstore.spark.register does it); elsewhere\n"
             "-- those two relations fail while the others work."]
    parts += [s + ";" for s in source_sql(snapshot, location)]
    parts += [s + ";" for s in functions_sql()]
    keep = catalog.needs(names) if names else None
    parts += [view_sql(v) + ";" for v in relation_names() if keep is None or v in keep]
    parts.append("-- Analytics: parameterized queries; bind the named parameters, e.g. in PySpark\n"
                 "--   spark.sql(text, args={'fit': 1, 'k': 10, 'lam': None})\n"
                 "-- A table parameter (removals) takes the name of a table or temporary view.")
    for a in analytics().values():
        if a.name in FUNCTIONS or names and a.name not in names or not available(a.name, example_columns):
            continue
        sig = ", ".join(p if d is None else f"{p} := {d}" for p, d in a.params)
        parts.append(f"-- analytic: {a.name}({sig})\n{analytic_sql(a.name)};")
    return "\n\n".join(parts) + "\n"


def statements(text: str) -> list[tuple[str | None, str]]:
    """The statements of a script from `script`, as (analytic name or None, SQL), split at the
    ';' that ends a line."""
    out = []
    for chunk in re.split(r";\s*\n", text):
        m = re.search(r"^--\s*analytic:\s*(\w+)", chunk, re.M)
        body = "\n".join(line for line in chunk.splitlines() if not line.lstrip().startswith("--")).strip()
        if body:
            out.append((m and m.group(1), body))
    return out
