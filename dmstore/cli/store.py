"""Store commands: init, info, schema, log, compact, vacuum, migrate."""
from __future__ import annotations

import json

import click

from .base import Command
from .options import output_options, store_arg


@click.command(cls=Command)
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
    from ..store import Store
    if examples is None and train_size is None:
        raise click.UsageError("give --train-size D (and --test-size N) or --examples FILE")
    s = Store.create(store, train_size=train_size, test_size=test_size, examples=examples)
    click.echo(f"created {s.root}: {s.d} train examples, {s.n_examples} examples in all")


@click.command(cls=Command)
@store_arg
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(store, as_json):
    """Experiments, alphas, models by role, targets, fits, log version and bytes on disk.

    \b
      dmstore info runs
      dmstore info runs --json
    """
    from ..store import Store
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
                   + (", train-major copy" if f.get("by_train") else "")
                   + f" ({f['created_at']})")
    click.echo(f"log version {i['version']} ({i['batches']} live batches); bytes on disk: {i['bytes_on_disk']:,}, "
               f"of which live: {i['bytes_live']:,}"
               + ("" if i["bytes_live"] >= 0.9 * i["bytes_on_disk"] else " (`dmstore vacuum` frees retired files)"))
    for name, c in i["caches"].items():
        if c["files"]:
            click.echo(f"cache {name}/: {c['files']} file(s), {c['bytes']:,} bytes (`dmstore vacuum --caches` "
                       f"deletes them; they are rebuilt when needed)")


@click.command(cls=Command)
@store_arg
@click.argument("relation", required=False)
def schema(store, relation):
    """Columns and types of every relation (or one).

    \b
      dmstore schema runs
      dmstore schema runs models
    """
    from ..engine import connect, view_names
    con = connect(store)
    names = [relation] if relation else view_names()
    for name in names:
        if name not in view_names():
            raise click.BadParameter(f"unknown relation {name!r}; one of {', '.join(view_names())}",
                                     param_hint="RELATION")
        click.echo(f"{name}:")
        for col, typ, *_ in con.execute(f'DESCRIBE "{name}"').fetchall():
            click.echo(f"  {col:<16} {typ}")


@click.command("log", cls=Command)
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
    import pyarrow as pa

    from ..engine import stream
    from ..storage import log
    from ..store import Store
    Store.open(store)
    t = pa.Table.from_pylist(log.history(store))
    if fmt == "parquet" and out is None:
        raise click.UsageError("--format parquet is binary: give -o FILE")
    stream(duckdb.connect().from_arrow(t), fmt, out, max_rows=10**9)


@click.command("compact", cls=Command)
@store_arg
@click.option("--max-cells", type=click.IntRange(1), default=32_000_000, show_default=True,
              help="Largest merged batch, in margins (models x targets).")
@click.option("--layout", type=click.Choice(["model", "target"]), default="target", show_default=True,
              help="target: also rewrite every batch target-major, so one target's margins (or a block "
                   "of targets: what fits and per-target analytics read) are read without scanning the "
                   "rest; model: model-major (faster to read one model's margins, cheaper to compact).")
@click.option("--by-train", "by_train", type=int, multiple=True, metavar="FIT",
              help="Also write fit FIT's train-major copy (relation weights_by_train: one training "
                   "example's weights over every target read without a scan of the fit; the explorer's "
                   "example pages use it). Repeatable; a fit that has one is skipped.")
def compact_cmd(store, max_cells, layout, by_train):
    """Merge many small batches into fewer large ones (contents and model ids unchanged; each
    merge is one commit, so readers and writers may keep working); with --by-train, also write
    train-major copies of fits' weights.

    \b
      dmstore compact runs                     # target-major: fast fits and per-target queries
      dmstore compact runs --layout model      # model-major: fast per-model reads
      dmstore compact runs --by-train 3        # fit 3 by training example (example pages of a dense fit)
    """
    from ..store import Store
    from ..store.fits import require_fit
    st = Store.open(store, "a")
    for fit in by_train:   # an unknown fit is refused before any work
        require_fit(st, fit)
    r = st.compact(max_cells, layout)
    click.echo(f"{r['before']} batches -> {r['after']} ({r['merged']} merged"
               + (f"; {r['skipped']} merge(s) skipped: a concurrent commit retired a source" if r["skipped"] else "")
               + "); retired batches stay on disk until `dmstore vacuum`")
    for fit in dict.fromkeys(by_train):
        c = st.copy_by_train(fit)
        click.echo(f"fit {fit}: train-major copy of {c['rows']:,} weights written in {c['seconds']:.1f} s"
                   if c["written"] else f"fit {fit}: has a train-major copy already")


@click.command(cls=Command)
@store_arg
@click.option("--retain", "retain_hours", type=click.FloatRange(0), default=168.0, show_default=True,
              metavar="HOURS", help="Keep files retired less than this long ago (readers of older "
                                    "snapshots may still read them). Below 1 needs --force.")
@click.option("--force", is_flag=True, help="Allow --retain below 1 hour (no reader of a recent snapshot running).")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option("--caches", is_flag=True, help="Also delete the caches: _retrain/ (retrained models of an "
                                             "interrupted counterfactual/support run) and _attribution/ (full-data "
                                             "models of `dmstore attribute`); rebuilt when needed.")
def vacuum(store, retain_hours, force, dry_run, caches):
    """Delete unit directories that no snapshot needs: those retired by a commit (compact,
    overwrite) more than --retain hours ago, and those a dead writer left without committing.
    Units a running writer (on any machine sharing the store) may still commit, and the version
    an unfinished sharded fit run reads, are always kept.

    \b
      dmstore vacuum runs                         # keep a week of history readable
      dmstore vacuum runs --retain 0 --force      # when no reader of an older snapshot runs
      dmstore vacuum runs --dry-run
      dmstore vacuum runs --caches                # and the retraining / attribution caches
    """
    from ..storage.vacuum import SAFE_RETAIN_HOURS
    from ..store import Store
    st = Store.open(store, "a")
    if retain_hours < SAFE_RETAIN_HOURS and not force:
        raise click.UsageError(f"--retain {retain_hours:g} is below the safe minimum of {SAFE_RETAIN_HOURS:g} h: "
                               f"a reader of a snapshot from the last hour would find its files deleted. "
                               f"Add --force if no such reader runs (running writers are protected either way)")
    r = st.vacuum(retain_hours, dry_run, force=force, caches=caches)
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
    for name, c in r.get("caches", {}).items():
        click.echo(f"{'would delete' if dry_run else 'deleted'} cache {name}/: {c['files']} file(s), {c['bytes']:,} bytes")
    if r.get("caches_kept"):
        click.echo(f"kept the caches: {r['caches_kept']}")


@click.command(cls=Command)
@store_arg
def migrate(store):
    """Migrate a store written by an older format version to this dmstore's format.

    \b
      dmstore migrate runs        # format 1 -> 2: the commit log names every live unit
    """
    from ..storage.migrate import migrate as run_migrate
    click.echo(run_migrate(store))
