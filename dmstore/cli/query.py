"""Query commands: query, export, macros, views."""
from __future__ import annotations

import sys

import click

from .base import Command
from .options import as_of_opt, attach_opt, limits_opts, output_options, param_opt, store_arg


@click.command(cls=Command)
@store_arg
@click.argument("sql")
@param_opt
@attach_opt()
@output_options()
@as_of_opt
@limits_opts
def query(store, sql, params, tables, fmt, out, as_of, memory_limit, threads):
    """Run a read-only SQL query over the store's views ('-' reads SQL from stdin). With several
    statements, the last one's rows are printed (as in DuckDB).

    \b
      dmstore query runs "SELECT experiment, alpha, role, count(*) FROM models GROUP BY ALL"
      dmstore query runs "SELECT * FROM fits WHERE target_id = \\$t" -p t 1347 --format csv
      echo "SELECT count(*) FROM margins" | dmstore query runs -
      dmstore query runs "SELECT count(*) FROM models" --as-of 3
      dmstore query runs "SELECT * FROM dm_removal_effect(1, 'sets')" --attach sets=sets.csv
    """
    from ..engine import read_relation, stream
    if sql == "-":
        sql = sys.stdin.read()
    if fmt == "parquet" and out is None:
        raise click.UsageError("--format parquet is binary: give -o FILE (or -o - to pipe it)")
    rel = read_relation(store, sql, dict(params), tables, as_of, memory_limit=memory_limit, threads=threads)
    stream(rel, fmt, out, store=store)


@click.command(cls=Command)
@store_arg
@click.argument("relation", required=False)
@click.option("--sql", default=None, help="Export the rows of this read-only query instead.")
@output_options(("parquet", "csv", "json", "jsonl"), default="parquet")
@click.option("--partition-by", multiple=True, help="Parquet only: write a directory partitioned by this column.")
@click.option("--overwrite", is_flag=True, help="With --partition-by: replace a non-empty output directory.")
@attach_opt("Expose a CSV/Parquet file as relation NAME for --sql.")
@param_opt
@as_of_opt
@limits_opts
def export(store, relation, sql, fmt, out, partition_by, overwrite, tables, params, as_of, memory_limit, threads):
    """Export a relation or a query's rows for analysts, streaming (masks: packed BLOBs in
    Parquet, base64 text in CSV and JSON).

    \b
      dmstore export runs models -o models.parquet
      dmstore export runs --sql "SELECT * FROM datamodels WHERE fit_id = 1" --format csv -o dm.csv
      dmstore export runs weights --partition-by fit_id -o weights/
      dmstore export runs margins --format jsonl -o - | gzip > margins.jsonl.gz
    """
    from ..engine import export as run_export
    if out is None:
        raise click.UsageError("give -o FILE (or -o - for stdout, or -o DIR with --partition-by)")
    if (relation is None) == (sql is None):
        raise click.UsageError("give a RELATION or --sql, not both")
    if partition_by and fmt != "parquet":
        raise click.UsageError("--partition-by works with --format parquet only")
    n = run_export(store, out, relation, sql, fmt, list(partition_by), dict(params), overwrite, as_of, tables,
                   memory_limit=memory_limit, threads=threads)
    click.echo(f"wrote {n} rows to {'stdout' if out == '-' else out}", err=True)


@click.command("macros", cls=Command)
@store_arg
@click.option("--all", "show_all", is_flag=True, help="Views too, not only the macros (analytics).")
@click.option("--details", is_flag=True, help="Also the parameter types and the output columns.")
@output_options(("table", "csv", "json", "jsonl"))
def macros(store, show_all, details, fmt, out):
    """The analytics of this store: every SQL macro with its parameters and purpose (from
    sql/*.sql), ready to call in `dmstore query`.

    \b
      dmstore macros runs
      dmstore macros runs --details --nl
      dmstore query runs "SELECT * FROM topk_neighbors(1, 10) LIMIT 20"
    """
    import duckdb
    import pyarrow as pa

    from ..engine import connect, objects, run, stream
    have = {r[0] for r in run(connect(store), "macro_names").fetchall()}
    rows = [o for o in objects().values() if (show_all or not o.is_view) and o.name in have]
    cols = ["kind", "signature", "purpose"] + (["parameters", "columns"] if details else [])
    t = pa.Table.from_pylist([{c: getattr(o, c) for c in cols} for o in rows])
    stream(duckdb.connect().from_arrow(t), fmt, out, max_rows=10**6)


@click.command("views", cls=Command)
@store_arg
@click.option("--dialect", type=click.Choice(["duckdb", "spark", "postgres", "bigquery"]), default="duckdb",
              show_default=True, help="SQL dialect to print the views in (sqlglot).")
@click.option("--view", "views", multiple=True,
              help="Only these views (repeat the option); with --dialect spark, only these analytics.")
@click.option("--location", metavar="URI",
              help="--dialect spark: where Spark reads the store's files (file://, hdfs://, s3a://…); "
                   "default the store's own directory.")
@as_of_opt
def views(store, dialect, views, location, as_of):
    """Print the view definitions in another SQL dialect (sqlglot), reading the files of the
    store's latest snapshot (or --as-of VERSION); exits 1 naming each view and function that
    would not translate faithfully.

    With --dialect spark it prints one runnable Spark SQL script: every relation as a temporary
    view, the in_mask function, then every analytic as a query with named parameters (bind them
    with spark.sql(text, args={...}); in Python, dmstore.spark.register does all of it).

    \b
      dmstore views runs --dialect spark > runs.sql
      dmstore views runs --dialect spark --location s3a://bucket/runs --view topk_neighbors
      dmstore views runs --dialect postgres --view datamodels
    """
    from ..dialects import view_sql
    if location and dialect != "spark":
        raise click.UsageError("--location works with --dialect spark only")
    click.echo(view_sql(store, dialect, list(views) or None, as_of=as_of, location=location), nl=False)
