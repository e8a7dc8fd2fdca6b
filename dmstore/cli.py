"""dmstore command line (the `dmstore` script; `cli.py` at the top of a checkout re-exports it): a
thin face over the library; every command is one library call.

Errors the library raises on purpose print `Error: …` and exit 1; usage errors exit 2.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from dmstore.errors import DmstoreError, InputError

ENV_STORE = "DMSTORE_STORE"


class StoreCommand(click.Command):
    """A command whose first argument is STORE; `DMSTORE_STORE` supplies it when the arguments
    given do not name one: when they do not parse without it, or when their first argument is
    not an existing directory and they parse with it too."""

    def parse_args(self, ctx, args):
        env = os.environ.get(ENV_STORE)
        if env and "store" in [p.name for p in self.params]:
            as_is, with_env = self._parses(ctx, args), self._parses(ctx, [env] + list(args))
            given = as_is.get("store") if as_is is not None else None
            if with_env is not None and (as_is is None or not (isinstance(given, str) and Path(given).is_dir())):
                args = [env] + list(args)
        return super().parse_args(ctx, args)

    def _parses(self, ctx, args):
        try:
            opts, rest, _ = self.make_parser(ctx).parse_args(list(args))
        except click.UsageError:
            return None
        if rest or any(p.required and opts.get(p.name) in (None, ()) for p in self.params
                       if isinstance(p, click.Argument)):
            return None
        return opts

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DmstoreError as e:
            raise click.ClickException(str(e)) from None
        except OSError as e:   # a path the user gave cannot be read or written
            raise click.ClickException(_os_message(e)) from None


def _os_message(e: OSError) -> str:
    where = f"{e.filename}: " if e.filename else ""
    return f"{where}{e.strerror or e}; check the path and its permissions"


class Group(click.Group):
    command_class = StoreCommand

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DmstoreError as e:
            raise click.ClickException(str(e)) from None
        except OSError as e:
            raise click.ClickException(_os_message(e)) from None


store_arg = click.argument("store", type=click.Path(file_okay=False), metavar="STORE")
mode_opt = click.option("--mode", type=click.Choice(["error", "append", "overwrite", "ignore"]),
                        default="append", show_default=True,
                        help="error: refuse if the experiment/alpha holds models; append: add new, "
                             "skip identical, refuse conflicts; overwrite: replace conflicts; "
                             "ignore: keep stored records on conflict.")
_EXT = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
        ".pq": "parquet", ".txt": "table"}


def output_options(formats=("table", "csv", "json", "jsonl", "parquet"), default="table"):
    """--format, the --csv/--json/--nl/--table shortcuts (as sqlite-utils) and -o FILE ('-':
    stdout). The format follows -o's extension unless --format or a shortcut says it; a mismatch
    is a usage error. The command receives `fmt` and `out`."""
    def deco(f):
        opts = [
            click.option("--format", "fmt", type=click.Choice(list(formats)), default=None,
                         help=f"Output format [default: from -o's extension, else {default}]."),
            click.option("--csv", "as_csv", is_flag=True, help="Shortcut for --format csv."),
            click.option("--json", "as_json_fmt", is_flag=True, help="Shortcut for --format json (one array)."),
            click.option("--nl", "as_nl", is_flag=True, help="Shortcut for --format jsonl (one object a line)."),
            click.option("-o", "--output", "out", type=click.Path(allow_dash=True), default=None,
                         help="Write to this file ('-': stdout) instead of stdout."),
        ]
        if "table" in formats:
            opts.insert(4, click.option("--table", "as_table", is_flag=True, help="Shortcut for --format table."))

        import functools

        @functools.wraps(f)
        def wrapper(*args, fmt=None, as_csv=False, as_json_fmt=False, as_nl=False, as_table=False, out=None, **kw):
            flags = {"csv": as_csv, "json": as_json_fmt, "jsonl": as_nl, "table": as_table}
            chosen = [name for name, on in flags.items() if on]
            if fmt is not None:
                chosen.append(fmt)
            if len(set(chosen)) > 1:
                raise click.UsageError(f"conflicting output formats: {', '.join(sorted(set(chosen)))}; give one")
            ext = _EXT.get(Path(out).suffix.lower()) if out not in (None, "-") else None
            if chosen and ext and ext != chosen[0] and not (chosen[0] == "table" and ext == "table"):
                raise click.UsageError(f"-o {out} looks like {ext} but the format is {chosen[0]}; "
                                       f"rename the file or drop the format option")
            fmt = chosen[0] if chosen else (ext if ext in formats else default)
            if fmt not in formats:
                raise click.UsageError(f"format {fmt} is not available here; one of {', '.join(formats)}")
            return f(*args, fmt=fmt, out=out, **kw)
        for o in reversed(opts):
            wrapper = o(wrapper)
        return wrapper
    return deco
as_of_opt = click.option("--as-of", "as_of", type=click.IntRange(0), default=None, metavar="VERSION",
                         help="Read the store as it was at this log version (see `dmstore log`).")
param_opt = click.option("-p", "--param", "params", type=(str, str), multiple=True,
                         metavar="NAME VALUE", help="Named SQL parameter, used as $NAME.")


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dmstore")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress on stderr (by default: a bar on a terminal, a line every 10 s elsewhere).")
def cli(quiet):
    """dmstore: an experiment store with SQL analytics for datamodels.

    Every command takes the store directory first (or from DMSTORE_STORE). Long work reports
    progress on stderr: tqdm's bar on a terminal, else a line at most every
    DMSTORE_PROGRESS_SECONDS (default 10); -q silences it.

    \b
      dmstore init runs --train-size 1347 --test-size 450
      dmstore ingest release runs ./release --alpha 0.5 --experiment cifar10
      dmstore query runs "SELECT role, count(*) FROM models GROUP BY role"
      dmstore info runs
      dmstore -q fit runs --experiment digits --alpha 0.5
    """
    from dmstore.progress import set_quiet
    set_quiet(quiet)


@cli.command()
@store_arg
@click.option("--train-size", type=int, default=None, help="Number of train examples d (mask width).")
@click.option("--test-size", type=int, default=0, show_default=True, help="Number of test examples.")
@click.option("--examples", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV/Parquet with example_id, split, label[, group_key, …] instead of sizes.")
def init(store, train_size, test_size, examples):
    """Create a store: manifest, examples table, empty relations.

    \b
      dmstore init runs --train-size 50000 --test-size 10000
      dmstore init runs --examples examples.csv
    """
    from dmstore import Store
    if examples is None and train_size is None:
        raise click.UsageError("give --train-size D (and --test-size N) or --examples FILE")
    s = Store.create(store, train_size=train_size, test_size=test_size, examples=examples)
    click.echo(f"created {s.root}: {s.d} train examples, {s.n_examples} examples in all")


@cli.group(cls=Group)
def ingest():
    """Ingest models from the paper's release, a reference store, or Parquet files."""


@ingest.command("release")
@store_arg
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--alpha", type=float, required=True, help="Subsampling fraction, e.g. 0.5.")
@click.option("--experiment", required=True, help="Experiment name to file the models under.")
@click.option("--eval-last", type=int, default=0, show_default=True, help="Mark the last K rows as eval models.")
@click.option("--val-last", type=int, default=0, show_default=True,
              help="Mark the K rows before the eval rows as val models.")
@mode_opt
def ingest_release_cmd(store, directory, alpha, experiment, eval_last, val_last, mode):
    """Ingest train_masks_<P>pct.npy, train_margins_<P>pct.npy and test_margins_<P>pct.npy.

    \b
      dmstore ingest release runs ./cifar10 --alpha 0.5 --experiment cifar10 --eval-last 10000
    """
    from dmstore import Store
    from dmstore.ingest import ingest_release
    r = ingest_release(Store.open(store, "a"), directory, alpha, experiment, eval_last, val_last, mode)
    click.echo(r.summary())


@ingest.command("reference")
@store_arg
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--alpha", type=float, required=True, help="Subsampling fraction, e.g. 0.5.")
@click.option("--experiment", required=True, help="Experiment name to file the models under.")
@click.option("--margins", "margin_map", multiple=True, metavar="NAME=SPLIT",
              help="Map margin array NAME(.npy) to the train or test split when widths are ambiguous.")
@click.option("--eval-last", type=int, default=0, show_default=True, help="Mark the last K completed rows as eval.")
@click.option("--val-last", type=int, default=0, show_default=True, help="Mark K rows before those as val.")
@mode_opt
def ingest_reference_cmd(store, directory, alpha, experiment, margin_map, eval_last, val_last, mode):
    """Ingest a reference-implementation store (masks.npy, margin arrays, _completed.npy);
    only completed rows are read.

    \b
      dmstore ingest reference runs ./train_store --alpha 0.5 --experiment resnet9
    """
    from dmstore import Store
    from dmstore.ingest import ingest_reference
    mapping = {}
    for item in margin_map:
        name, sep, split = item.partition("=")
        if not sep or split not in ("train", "test"):
            raise click.BadParameter(f"{item!r}: expected NAME=train or NAME=test", param_hint="--margins")
        mapping[name.removesuffix(".npy")] = split
    r = ingest_reference(Store.open(store, "a"), directory, alpha, experiment, eval_last, val_last,
                         mode, mapping)
    click.echo(r.summary())


@ingest.command("parquet")
@store_arg
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@mode_opt
def ingest_parquet_cmd(store, files, mode):
    """Ingest Parquet or Arrow IPC files that follow schemas/: model files (with a mask column)
    and margin files (model_id, example_id, margin).

    \b
      dmstore ingest parquet runs models.parquet margins.parquet
    """
    from dmstore import Store
    from dmstore.ingest import ingest_parquet
    click.echo(ingest_parquet(Store.open(store, "a"), files, mode).summary())


@cli.command()
@store_arg
@click.argument("sql")
@param_opt
@click.option("--attach", "tables", multiple=True, metavar="NAME=FILE",
              help="Expose a CSV/Parquet file as relation NAME (e.g. removal sets for dm_removal_effect).")
@output_options()
@as_of_opt
def query(store, sql, params, tables, fmt, out, as_of):
    """Run a read-only SQL query over the store's views ('-' reads SQL from stdin).

    \b
      dmstore query runs "SELECT experiment, alpha, role, count(*) FROM models GROUP BY ALL"
      dmstore query runs "SELECT * FROM fits WHERE target_id = \\$t" -p t 1347 --format csv
      echo "SELECT count(*) FROM margins" | dmstore query runs -
      dmstore query runs "SELECT count(*) FROM models" --as-of 3
    """
    from dmstore.db import read_relation, stream
    if sql == "-":
        sql = sys.stdin.read()
    if fmt == "parquet" and out is None:
        raise click.UsageError("--format parquet is binary: give -o FILE (or -o - to pipe it)")
    stream(read_relation(store, sql, dict(params), _tables(tables), as_of), fmt, out)


def _tables(items) -> dict:
    extra = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: expected NAME=FILE", param_hint="--attach")
        extra[name] = path
    return extra


@cli.command()
@store_arg
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(store, as_json):
    """Experiments, alphas, models by role, targets, fits, log version and bytes on disk.

    \b
      dmstore info runs
      dmstore info runs --json
    """
    from dmstore import Store
    i = Store.open(store).info()
    if as_json:
        click.echo(json.dumps(i, indent=2))
        return
    click.echo(f"store {i['path']} (format version {i['format_version']}, created {i['created_at']})")
    click.echo("examples: " + ", ".join(f"{k} {v}" for k, v in i["examples"].items())
               + f"; mask width d = {i['train_size']}")
    if not i["experiments"]:
        click.echo("no models yet")
    for e in i["experiments"]:
        click.echo(f"  {e['experiment']}  alpha={e['alpha']:g}  role={e['role']}: "
                   f"{e['models']} models on {e['masks']} masks")
    click.echo(f"targets with margins: {i['targets_with_margins']}; fits: {i['fits']}")
    for f in i["fit_runs"]:
        click.echo(f"  fit {f['fit_id']}: {f['estimator']} on {f['experiment']} alpha={f['alpha']:g}, "
                   f"{f['n_targets']} targets, {f['n_fit']} fit + {f['n_val']} val models"
                   + (f", {f['n_not_converged']} not converged" if f["n_not_converged"] else "")
                   + f" ({f['created_at']})")
    click.echo(f"log version {i['version']} ({i['batches']} live batches); bytes on disk: {i['bytes_on_disk']:,}, "
               f"of which live: {i['bytes_live']:,}"
               + ("" if i["bytes_live"] >= 0.9 * i["bytes_on_disk"] else " (`dmstore vacuum` frees retired files)"))


@cli.command()
@store_arg
@click.argument("relation", required=False)
def schema(store, relation):
    """Columns and types of every relation (or one).

    \b
      dmstore schema runs
      dmstore schema runs models
    """
    from dmstore.db import connect, view_names
    con = connect(store)
    names = [relation] if relation else view_names()
    for name in names:
        if name not in view_names():
            raise click.BadParameter(f"unknown relation {name!r}; one of {', '.join(view_names())}",
                                     param_hint="RELATION")
        click.echo(f"{name}:")
        for col, typ, *_ in con.execute(f'DESCRIBE "{name}"').fetchall():
            click.echo(f"  {col:<16} {typ}")


@cli.command()
@store_arg
@click.argument("relation", required=False)
@click.option("--sql", default=None, help="Export the rows of this read-only query instead.")
@output_options(("parquet", "csv", "json", "jsonl"), default="parquet")
@click.option("--partition-by", multiple=True, help="Parquet only: write a directory partitioned by this column.")
@click.option("--overwrite", is_flag=True, help="With --partition-by: replace a non-empty output directory.")
@click.option("--attach", "tables", multiple=True, metavar="NAME=FILE",
              help="Expose a CSV/Parquet file as relation NAME for --sql.")
@param_opt
@as_of_opt
def export(store, relation, sql, fmt, out, partition_by, overwrite, tables, params, as_of):
    """Export a relation or a query's rows for analysts, streaming (masks: packed BLOBs in
    Parquet, base64 text in CSV and JSON).

    \b
      dmstore export runs models -o models.parquet
      dmstore export runs --sql "SELECT * FROM datamodels WHERE fit_id = 1" --format csv -o dm.csv
      dmstore export runs weights --partition-by fit_id -o weights/
      dmstore export runs margins --format jsonl -o - | gzip > margins.jsonl.gz
    """
    from dmstore.db import export as run_export
    if out is None:
        raise click.UsageError("give -o FILE (or -o - for stdout, or -o DIR with --partition-by)")
    if (relation is None) == (sql is None):
        raise click.UsageError("give a RELATION or --sql, not both")
    if partition_by and fmt != "parquet":
        raise click.UsageError("--partition-by works with --format parquet only")
    n = run_export(store, out, relation, sql, fmt, list(partition_by), dict(params), overwrite, as_of,
                   _tables(tables))
    click.echo(f"wrote {n} rows to {'stdout' if out == '-' else out}", err=True)


@cli.command("fit")
@store_arg
@click.option("--experiment", required=True, help="Experiment to fit.")
@click.option("--alpha", type=float, required=True, help="Subsampling fraction to fit.")
@click.option("--estimator", type=click.Choice(["lasso", "ridge", "ols", "diff_means", "diff_means_correct"]),
              default="lasso", show_default=True,
              help="lasso (paper's default), ridge, ols (minimum norm), diff_means or diff_means_correct (eq. 15).")
@click.option("--lambdas", "n_lambdas", type=click.IntRange(1), default=30, show_default=True,
              help="Length of the lambda path (lasso, ridge).")
@click.option("--lambda-min-ratio", type=float, default=1e-3, show_default=True,
              help="Smallest lambda as a fraction of each target's lambda_max.")
@click.option("--targets", default="test", show_default=True,
              help="test | train | all | ids such as 0,5,100-199.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto: cuda when a GPU is present, else cpu.")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True,
              help="Solver precision; Gram counts are exact in either.")
@click.option("--keep-path", is_flag=True, help="Also write the weights at every lambda of the path.")
@click.option("--tol", type=float, default=1e-6, show_default=True,
              help="Duality gap, relative to the null model's objective.")
@click.option("--max-iter", type=click.IntRange(1), default=1000, show_default=True, help="Iteration cap per lambda.")
@click.option("--val-fraction", type=float, default=0.1, show_default=True,
              help="Share of fit models held out for lambda selection when the store has no val models.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of that split.")
@click.option("--shard", default=None, metavar="K/N",
              help="Fit only the K-th of N shares of the targets (K = 0..N-1), e.g. from a SLURM array "
                   "job; needs --run. The N shards form one fit.")
@click.option("--run", "run_name", default=None, metavar="NAME",
              help="Name of the sharded run this shard belongs to (the same for all N shards).")
def fit_cmd(store, experiment, alpha, estimator, n_lambdas, lambda_min_ratio, targets, device, dtype,
            keep_path, tol, max_iter, val_fraction, seed, shard, run_name):
    """Fit one datamodel per target example, all sharing the mask matrix, and write the fits
    and weights tables.

    With --shard K/N --run NAME, N processes (any machines sharing the store) each fit a share
    of the targets; together they form one fit with one fit_id, which appears in fit_runs when
    the last shard commits. Each shard reads the store version the run started at, commits
    atomically, and is skipped when rerun after it committed.

    \b
      dmstore fit runs --experiment cifar10 --alpha 0.5
      dmstore fit runs --experiment cifar10 --alpha 0.5 --targets train --lambdas 15 --keep-path
      dmstore fit runs --experiment cifar10 --alpha 0.5 --estimator diff_means
      dmstore fit runs --experiment cifar10 --alpha 0.5 --shard $SLURM_ARRAY_TASK_ID/8 --run lasso-a50
    """
    from dmstore import Store
    from dmstore.fit import fit
    from dmstore.sharding import parse_shard
    if (shard is None) != (run_name is None):
        raise click.UsageError("--shard K/N and --run NAME go together")
    share = None
    if shard is not None:
        try:
            share = parse_shard(shard)
        except InputError as e:
            raise click.BadParameter(str(e), param_hint="--shard") from None
    r = fit(Store.open(store, "a"), experiment, alpha, estimator, targets, n_lambdas, lambda_min_ratio,
            device, dtype, keep_path, tol, max_iter, val_fraction, seed, shard=share, run=run_name)
    if share is not None:
        click.echo(f"run {run_name} shard {share[0]}/{share[1]}: " + (
            "already committed, not fitted again" if r.reused else r.summary()))
    else:
        click.echo(r.summary())


@cli.command("train")
@store_arg
@click.option("--recipe", default="digits", show_default=True,
              help="Built-in recipe (digits, cifar10) or your own as module:attribute.")
@click.option("--alpha", type=float, default=0.5, show_default=True, help="Subsampling fraction.")
@click.option("--models", type=click.IntRange(1), default=1000, show_default=True, help="Models in the run.")
@click.option("--batch", type=click.IntRange(1), default=500, show_default=True,
              help="Models trained together and ingested as one batch.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the mask plan and of each model's generator (same seed: same models).")
@click.option("--experiment", default=None, help="Experiment name (default: the recipe's name).")
@click.option("--repeats", type=click.IntRange(1), default=1, show_default=True,
              help="Models per mask (they share a mask_id).")
@click.option("--role", type=click.Choice(["fit", "val", "eval"]), default="fit", show_default=True,
              help="fit and val models train datamodels; eval models only test them.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Processes (one torch thread each).")
@click.option("--shard", default=None, metavar="K/N",
              help="Train only the K-th of N disjoint shares of the plan (K = 0..N-1), e.g. from a "
                   "SLURM array job: the N shards together train exactly the unsharded run's models.")
def train_cmd(store, recipe, alpha, models, batch, seed, experiment, repeats, role, workers, shard):
    """Train many models on alpha-subsets and ingest every finished batch; rerunning the same
    command resumes and never duplicates a model. Creates STORE from the recipe if missing.

    \b
      dmstore train runs --recipe digits --alpha 0.5 --models 20000 --workers 2
      dmstore train runs --recipe digits --models 500 --repeats 5 --role eval
      dmstore train runs --recipe mypkg.recipes:MyRecipe --models 100
      dmstore train runs --models 20000 --shard $SLURM_ARRAY_TASK_ID/8      # one of 8 array tasks
    """
    from dmstore.train import train
    share = None
    if shard is not None:
        k, sep, n = shard.partition("/")
        if not (sep and k.isdigit() and n.isdigit() and int(k) < int(n)):
            raise click.BadParameter(f"{shard!r}: expected K/N with 0 <= K < N, e.g. 0/8", param_hint="--shard")
        share = (int(k), int(n))
    click.echo(train(store, recipe, alpha, models, batch, seed, experiment, repeats, role, workers,
                     shard=share).summary())


def target_choice_opts(f):
    """--n-targets N (random) and --targets IDS, resolved by `_target_choice`."""
    f = click.option("--targets", default=None, metavar="IDS",
                     help="These targets: ids like 1400 or 1400,1500-1510, or a split (test, train).")(f)
    return click.option("--n-targets", type=click.IntRange(1), default=None,
                        help="Draw this many of the fit's targets at random [default: 10 when --targets "
                             "is not given].")(f)


recipe_opt = click.option("--recipe", default=None, metavar="SPEC",
                          help="The recipe to retrain with (default: the one `dmstore train` recorded).")


@cli.command("counterfactual")
@store_arg
@click.option("--fit", "fit_id", type=int, required=True, help="Fit whose weights choose and predict removals.")
@target_choice_opts
@click.option("--k", "ks", default="10,20,40,80,160", show_default=True, help="Removal sizes.")
@click.option("--selectors", default="top,bottom,random", show_default=True,
              help="Which removals: top (largest weights), bottom (most negative), random.")
@click.option("--trials", type=click.IntRange(1), default=20, show_default=True, help="Models per removal set.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of target sampling and retraining.")
@click.option("--removals", type=click.Path(dir_okay=False), default=None,
              help="CSV/Parquet of removal sets (set_id, target_id, train_id): retrain without each "
                   "set instead of the top/bottom/random selectors.")
@recipe_opt
def counterfactual_cmd(store, fit_id, n_targets, targets, ks, selectors, trials, seed, removals, recipe):
    """Retrain without each target's top/bottom/random k training examples, or without each set
    of a --removals file (with the recipe that trained the fit's models, plug-ins included), and
    store actual vs predicted effects in `counterfactuals`.

    \b
      dmstore counterfactual runs --fit 1 --n-targets 20 --k 10,20,40,80,160 --trials 20
      dmstore counterfactual runs --fit 1 --targets 1400,1401 --selectors top --k 40
      dmstore counterfactual runs --fit 1 --removals sets.csv --trials 10
    """
    from dmstore import Store
    from dmstore.counterfactual import counterfactual, counterfactual_removals
    st = Store.open(store, "a")
    if removals is not None:
        r = counterfactual_removals(st, fit_id, removals, trials, seed, recipe)
        click.echo(f"{r['n']} (set, target) pairs from {r['sets']} retrained set(s): predicted vs actual "
                   f"Pearson {r['pearson']:.3f}, Spearman {r['spearman']:.3f}")
        return
    if removals is not None and (n_targets or targets):
        raise click.UsageError("--removals names its targets; drop --n-targets/--targets")
    r = counterfactual(st, fit_id, _target_choice(st, n_targets, targets), _ints(ks, "--k"),
                       tuple(s for s in selectors.split(",") if s), trials, seed, recipe)
    click.echo(f"{r['n']} removal sets: predicted vs actual Pearson {r['pearson']:.3f}, Spearman {r['spearman']:.3f}")


@cli.command("support")
@store_arg
@click.option("--fit", "fit_id", type=int, required=True, help="The fit whose weights to use (ids: `dmstore info`).")
@target_choice_opts
@click.option("--k", "ks", default="10,20,40,80,160,320,640", show_default=True, help="Search grid.")
@click.option("--trials", type=click.IntRange(1), default=20, show_default=True, help="Models trained per removal set.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of target sampling and retraining.")
@recipe_opt
def support_cmd(store, fit_id, n_targets, targets, ks, trials, seed, recipe):
    """Estimate each target's data support by the guided search of Algorithm 1 (grid of k,
    isotonic regression, certification at 1.2x) and store it in `support`.

    \b
      dmstore support runs --fit 1 --n-targets 20
      dmstore support runs --fit 1 --targets 1400-1409
    """
    from dmstore import Store
    from dmstore.counterfactual import support
    st = Store.open(store, "a")
    r = support(st, fit_id, _target_choice(st, n_targets, targets), _ints(ks, "--k"), trials, seed, recipe)
    click.echo(f"{r['n']} targets: {r['with_support']} with a support estimate, {r['certified']} certified")


@cli.command("report")
@store_arg
@click.option("--fit", "fit_id", type=int, required=True, help="The fit to report (ids: `dmstore info`).")
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), default="report.html", show_default=True,
              help="The HTML file to write.")
@click.option("--all-fits", is_flag=True, help="Table K.1 lists every fit, not the newest of each estimator.")
def report_cmd(store, fit_id, out, all_fits):
    """Write an HTML report of a fit: figures 5, 7, 8, 9 and Table K.1 of the paper for this data.

    \b
      dmstore report runs --fit 1 -o report.html
      dmstore report runs --fit 1 --all-fits
    """
    from dmstore import Store
    from dmstore.report import build_report
    click.echo(build_report(Store.open(store), fit_id, out, all_fits=all_fits))


@cli.command("demo", cls=click.Command)
@click.option("--out", default="demo-out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the store and the report.")
@click.option("--models", type=click.IntRange(100), default=4000, show_default=True,
              help="Models to train (fit + val); 400 held-out eval models come on top.")
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True, help="Training processes (one torch thread each).")
def demo_cmd(out, models, workers):
    """Train digits MLPs, fit their datamodels, check them on held-out models and retrained
    counterfactuals, and write an HTML report (a few minutes on 2 cores, no download).

    \b
      dmstore demo
      dmstore demo --out /tmp/dm --models 20000
    """
    from dmstore.demo import demo
    try:
        demo(out, models, workers=workers)
    except DmstoreError as e:
        raise click.ClickException(str(e)) from None


@cli.command("embed")
@store_arg
@click.option("--fit", "fit_id", type=int, required=True, help="The fit whose weights to use (ids: `dmstore info`).")
@click.option("--pca", type=click.IntRange(1), default=50, show_default=True, help="Principal components kept.")
@click.option("--clusters", type=click.IntRange(2), default=20, show_default=True, help="Spectral clusters.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the spectral clustering.")
def embed_cmd(store, fit_id, pca, clusters, seed):
    """Datamodel embeddings (section 4.3): PCA and spectral clustering of the L2-normalized weight
    vectors, stored as embedding_pca, embedding_variance and clusters.

    \b
      dmstore embed runs --fit 1 --pca 50 --clusters 20
      dmstore query runs "SELECT cluster, count(*) FROM clusters WHERE fit_id = 1 GROUP BY 1"
    """
    from dmstore import Store
    from dmstore.embed import embed
    r = embed(Store.open(store, "a"), fit_id, pca, clusters, seed)
    click.echo(f"embedded {r['targets']} targets ({r['skipped_zero']} with all-zero weights skipped): "
               f"{r['components']} components (top 5 explain {100 * r['variance_top']:.1f} %), {r['clusters']} clusters")


@cli.command("views")
@store_arg
@click.option("--dialect", type=click.Choice(["duckdb", "spark", "postgres", "bigquery"]), default="duckdb",
              show_default=True, help="SQL dialect to print the views in (sqlglot).")
@click.option("--view", "views", multiple=True,
              help="Only these views (repeat the option); with --dialect spark, only these analytics.")
@click.option("--location", metavar="URI",
              help="--dialect spark: where Spark reads the store's files (file://, hdfs://, s3a://…); "
                   "default the store's own directory.")
@click.option("--as-of", "as_of", type=int, metavar="VERSION", help="A past snapshot (see `dmstore log`).")
def views_cmd(store, dialect, views, location, as_of):
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
    from dmstore.dialects import view_sql
    if location and dialect != "spark":
        raise click.UsageError("--location works with --dialect spark only")
    click.echo(view_sql(store, dialect, list(views) or None, as_of=as_of, location=location), nl=False)


def _target_choice(store, n_targets, targets):
    """--n-targets N (a random count) or --targets IDS (ids or a split), never both."""
    if n_targets is not None and targets is not None:
        raise click.UsageError("give --n-targets N (random targets) or --targets IDS, not both")
    if targets is None:
        return n_targets or 10
    return [int(t) for t in store.resolve_targets(targets)]


def _ints(text, name):
    try:
        return tuple(int(x) for x in text.split(",") if x)
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected integers like 10,20,40", param_hint=name) from None


@cli.command("compact")
@store_arg
@click.option("--max-cells", type=click.IntRange(1), default=32_000_000, show_default=True,
              help="Largest merged batch, in margins (models x targets).")
@click.option("--layout", type=click.Choice(["model", "target"]), default="model", show_default=True,
              help="target: also rewrite every batch target-major, so one target's margins (or a "
                   "block of targets) are read without scanning the rest; model: model-major.")
def compact_cmd(store, max_cells, layout):
    """Merge many small batches into fewer large ones (contents and model ids unchanged; each
    merge is one commit, so readers and writers may keep working).

    \b
      dmstore compact runs
      dmstore compact runs --layout target     # fast per-target queries and margin_matrix(targets=…)
    """
    from dmstore import Store
    from dmstore.compact import compact
    r = compact(Store.open(store, "a"), max_cells, layout)
    click.echo(f"{r['before']} batches -> {r['after']} ({r['merged']} merged"
               + (f"; {r['skipped']} merge(s) skipped: a concurrent commit retired a source" if r["skipped"] else "")
               + "); retired batches stay on disk until `dmstore vacuum`")


@cli.command("macros")
@store_arg
@click.option("--all", "show_all", is_flag=True, help="Views too, not only the macros (analytics).")
@click.option("--details", is_flag=True, help="Also the parameter types and the output columns.")
@output_options(("table", "csv", "json", "jsonl"))
def macros_cmd(store, show_all, details, fmt, out):
    """The analytics of this store: every SQL macro with its parameters and purpose (from
    sql/*.sql), ready to call in `dmstore query`.

    \b
      dmstore macros runs
      dmstore macros runs --details --nl
      dmstore query runs "SELECT * FROM topk_neighbors(1, 10) LIMIT 20"
    """
    import duckdb
    import pyarrow as pa
    from dmstore.db import catalog, connect, stream
    con = connect(store)
    have = {r[0] for r in con.sql("SELECT function_name FROM duckdb_functions() WHERE macro_definition IS NOT NULL "
                                   "UNION SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    rows = [r for r in catalog() if (show_all or r["kind"] != "view") and r["name"] in have]
    cols = ["kind", "signature", "purpose"] + (["parameters", "columns"] if details else [])
    t = pa.Table.from_pylist([{c: r[c] for c in cols} for r in rows])
    stream(duckdb.connect().from_arrow(t), fmt, out, max_rows=10**6)


@cli.command("log")
@store_arg
@output_options()
def log_cmd(store, fmt, out):
    """The store's history: one row per commit (version, time, operation, units and models
    added or removed). Any VERSION here can be read with --as-of.

    \b
      dmstore log runs
      dmstore log runs --format csv -o history.csv
      dmstore query runs "SELECT count(*) FROM models" --as-of 2
    """
    import duckdb
    from dmstore import Store, log
    from dmstore.db import stream
    Store.open(store)
    rows = log.history(store)
    t = __import__("pyarrow").Table.from_pylist(rows)
    if fmt == "parquet" and out is None:
        raise click.UsageError("--format parquet is binary: give -o FILE")
    stream(duckdb.connect().from_arrow(t), fmt, out, max_rows=10**9)


@cli.command()
@store_arg
@click.option("--retain", "retain_hours", type=click.FloatRange(0), default=168.0, show_default=True,
              metavar="HOURS", help="Keep files retired less than this long ago (readers of older "
                                    "snapshots may still read them). Below 1 needs --force.")
@click.option("--force", is_flag=True, help="Allow --retain below 1 hour (no reader of a recent snapshot running).")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
def vacuum(store, retain_hours, force, dry_run):
    """Delete unit directories that no snapshot needs: those retired by a commit (compact,
    overwrite) more than --retain hours ago, and those a dead writer left without committing.
    Units a running writer (on any machine sharing the store) may still commit, and the version
    an unfinished sharded fit run reads, are always kept.

    \b
      dmstore vacuum runs                         # keep a week of history readable
      dmstore vacuum runs --retain 0 --force      # when no reader of an older snapshot runs
      dmstore vacuum runs --dry-run
    """
    from dmstore import Store
    from dmstore.vacuum import SAFE_RETAIN_HOURS, vacuum as run_vacuum
    Store.open(store, "a")
    if retain_hours < SAFE_RETAIN_HOURS and not force:
        raise click.UsageError(f"--retain {retain_hours:g} is below the safe minimum of {SAFE_RETAIN_HOURS:g} h: "
                               f"a reader of a snapshot from the last hour would find its files deleted. "
                               f"Add --force if no such reader runs (running writers are protected either way)")
    r = run_vacuum(store, retain_hours, dry_run, force=force)
    for p in r["deleted"]:
        click.echo(("would delete " if dry_run else "deleted ") + p)
    click.echo(f"{'would free' if dry_run else 'freed'} {r['bytes']:,} bytes in {len(r['deleted'])} "
               f"unit(s); live version {r['version']}")
    why = {"retention": f"retired less than {retain_hours:g} h ago (--retain)",
           "live writer": "a running writer may still commit them",
           "pinned run": "unfinished sharded fit run(s) " + ", ".join(
               f"{n} (version {v})" for n, v in sorted(r["runs"].items()))
           + " read them; finish the run, or remove its _runs/NAME.json to give it up"}
    for reason, units in r["kept"].items():
        click.echo(f"kept {len(units)} unit(s): {why[reason]}")


@cli.command()
@store_arg
def migrate(store):
    """Migrate a store written by an older format version to this dmstore's format.

    \b
      dmstore migrate runs        # format 1 -> 2: the commit log names every live unit
    """
    from dmstore.migrate import migrate as run_migrate
    click.echo(run_migrate(store))


def main():
    import warnings
    warnings.formatwarning = lambda msg, *a, **k: f"Warning: {msg}\n"  # no source lines on a CLI
    cli(prog_name="dmstore")


if __name__ == "__main__":
    main()
