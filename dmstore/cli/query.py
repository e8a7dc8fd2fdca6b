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
@click.option("--udf", "udfs", multiple=True, metavar="MODULE:FUNCTION",
              help="Register your own Python function as a SQL function (repeat); it runs as your code, "
                   "with your rights.")
def query(store, sql, params, tables, fmt, out, as_of, memory_limit, threads, udfs):
    """Run a read-only SQL query over the store's views ('-' reads SQL from stdin). With several
    statements, the last one's rows are printed (as in DuckDB).

    \b
      dmstore query runs "SELECT experiment, alpha, role, count(*) FROM models GROUP BY ALL"
      dmstore query runs "SELECT * FROM fits WHERE target_id = \\$t" -p t 1347 --format csv
      echo "SELECT count(*) FROM margins" | dmstore query runs -
      dmstore query runs "SELECT count(*) FROM models" --as-of 3
      dmstore query runs "SELECT * FROM dm_removal_effect(1, 'sets')" --attach sets=sets.csv
      dmstore query runs "SELECT dm_predict(1, 1400, mask_of([3, 17, 99]))"
      dmstore query runs "SELECT my_score(mask) FROM models" --udf mypkg.udfs:my_score
    """
    from ..engine import read_relation, stream
    if sql == "-":
        sql = sys.stdin.read()
    if fmt == "parquet" and out is None:
        raise click.UsageError("--format parquet is binary: give -o FILE (or -o - to pipe it)")
    rel = read_relation(store, sql, dict(params), tables, as_of, memory_limit=memory_limit, threads=threads,
                        udfs=udfs)
    stream(rel, fmt, out, store=store)


@click.command(cls=Command)
@store_arg
@click.argument("relation", required=False)
@click.option("--sql", default=None, help="Export the rows of this read-only query instead.")
@click.option("--scores", "fit_id", type=int, default=None, metavar="FIT",
              help="Export fit FIT's weights as a dense matrix (-o FILE.npy or FILE.pt) for other "
                   "attribution tools.")
@click.option("--layout", type=click.Choice(["target-major", "train-major"]), default="target-major",
              show_default=True, help="With --scores: rows are targets [n, d], or train examples [d, n] "
                                      "(dattri, traker).")
@output_options(("parquet", "csv", "json", "jsonl", "npy", "pt"), default="parquet")
@click.option("--partition-by", multiple=True, help="Parquet only: write a directory partitioned by this column.")
@click.option("--overwrite", is_flag=True, help="With --partition-by: replace a non-empty output directory.")
@attach_opt("Expose a CSV/Parquet file as relation NAME for --sql.")
@param_opt
@as_of_opt
@limits_opts
def export(store, relation, sql, fit_id, layout, fmt, out, partition_by, overwrite, tables, params, as_of,
           memory_limit, threads):
    """Export a relation or a query's rows for analysts, streaming (masks: packed BLOBs in
    Parquet, base64 text in CSV and JSON); or, with --scores FIT, a fit's weights as the dense
    matrix other attribution tools read (targets in ascending id order).

    \b
      dmstore export runs models -o models.parquet
      dmstore export runs --sql "SELECT * FROM datamodels WHERE fit_id = 1" --format csv -o dm.csv
      dmstore export runs weights --partition-by fit_id -o weights/
      dmstore export runs margins --format jsonl -o - | gzip > margins.jsonl.gz
      dmstore export runs --scores 1 --layout train-major -o lasso.npy
    """
    from ..engine import export as run_export
    from ..engine import export_scores
    if out is None:
        raise click.UsageError("give -o FILE (or -o - for stdout, or -o DIR with --partition-by)")
    if fit_id is not None or fmt in ("npy", "pt"):
        if fit_id is None or relation is not None or sql is not None or fmt not in ("npy", "pt") or partition_by:
            raise click.UsageError("--scores FIT writes a dense matrix: give it alone, with -o FILE.npy or FILE.pt")
        tids, shape = export_scores(store, fit_id, out, layout, as_of)
        click.echo(f"wrote fit {fit_id}'s weights, {layout} {shape[0]} x {shape[1]} (targets {int(tids[0])}.."
                   f"{int(tids[-1])}), to {out}", err=True)
        return
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
    sql/*.sql) and the Python UDFs, ready to call in `dmstore query`.

    \b
      dmstore macros runs
      dmstore macros runs --details --nl
      dmstore query runs "SELECT * FROM topk_neighbors(1, 10) LIMIT 20"
    """
    import duckdb
    import pyarrow as pa

    from ..engine import connect, objects, run, stream
    from ..engine.udfs import BUILTINS
    have = {r[0] for r in run(connect(store), "macro_names").fetchall()}
    rows = [{"kind": o.kind, "signature": o.signature, "purpose": o.purpose, "parameters": o.parameters,
             "columns": o.columns} for o in objects().values() if (show_all or not o.is_view) and o.name in have]
    rows += [{"kind": "python udf", "signature": b.signature, "purpose": b.doc,
              "parameters": ", ".join(t for _, t in b.params), "columns": b.returns} for b in BUILTINS.values()]
    cols = ["kind", "signature", "purpose"] + (["parameters", "columns"] if details else [])
    t = pa.Table.from_pylist([{c: r[c] for c in cols} for r in rows])
    if fmt == "table" and out is None and not details:
        # signatures whole; the purpose takes what the terminal has left (at least 40 characters)
        import shutil

        from ..engine.formats import render_table
        used = max(len(r["kind"]) for r in rows) + max(len(r["signature"]) for r in rows) + 4
        width = max(40, shutil.get_terminal_size((120, 24)).columns - used)
        click.echo(render_table(t, max_width={"kind": 40, "signature": 10**4, "purpose": width}), nl=False)
        return
    stream(duckdb.connect().from_arrow(t), fmt, out, max_rows=10**6)


@click.command("views", cls=Command)
@store_arg
@click.option("--dialect", type=click.Choice(["duckdb", "spark", "postgres", "bigquery"]), default="duckdb",
              show_default=True, help="SQL dialect to print the views in (sqlglot).")
@click.option("--view", "views", multiple=True,
              help="Only these views or macros and what they read (repeat the option).")
@click.option("--location", metavar="URI",
              help="--dialect spark: where Spark reads the store's files (file://, hdfs://, s3a://…); "
                   "default the store's own directory.")
@as_of_opt
def views(store, dialect, views, location, as_of):
    """Print the store's SQL for another engine, reading the files of the store's latest
    snapshot (or --as-of VERSION).

    duckdb (default): one script that runs as is in a plain DuckDB without dmstore (`duckdb
    -init runs.sql`): every relation in dependency order, then in_mask and every analytic macro;
    dmstore's Python UDFs are NULL stand-ins there. postgres, bigquery: the views (sqlglot),
    exiting 1 naming each view and function that would not translate faithfully.

    With --dialect spark it prints one runnable Spark SQL script: every relation as a temporary
    view, the in_mask function, then every analytic as a query with named parameters (bind them
    with spark.sql(text, args={...}); in Python, dmstore.spark.register does all of it).

    \b
      dmstore views runs > runs.sql && duckdb -init runs.sql
      dmstore views runs --dialect spark > runs.sql
      dmstore views runs --dialect spark --location s3a://bucket/runs --view topk_neighbors
      dmstore views runs --dialect postgres --view datamodels
    """
    from ..dialects import view_sql
    if location and dialect != "spark":
        raise click.UsageError("--location works with --dialect spark only")
    click.echo(view_sql(store, dialect, list(views) or None, as_of=as_of, location=location), nl=False)
