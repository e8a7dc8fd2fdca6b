"""Analysis commands: counterfactual, support, embed, report."""
from __future__ import annotations

import click

from ..attribution import registry
from .base import Command
from .options import IntList, recipe_opt, store_arg, target_choice, target_choice_opts


class RegistryChoice(click.Choice):
    """A choice among names read from a registry when the command runs (so a method registered
    after import is a valid choice)."""

    def __init__(self, names):
        self._names = names
        super().__init__([])

    @property
    def choices(self):
        return tuple(self._names())

    @choices.setter
    def choices(self, value):
        pass


class LazyHelp(click.Option):
    """An option whose help text is a function, read when the help is shown (registry contents)."""

    def __init__(self, *args, help=None, **kw):
        super().__init__(*args, **kw)
        self._help = help

    @property
    def help(self):
        return self._help() if callable(self._help) else self._help

    @help.setter
    def help(self, value):
        self._help = value


def _note(line: str) -> None:
    """A line about long work, on stderr (silenced by -q)."""
    from ..progress import quiet
    if not quiet():
        click.echo(line, err=True)


@click.command("counterfactual", cls=Command)
@store_arg
@click.option("--fit", "fit_id", type=int, required=True, help="Fit whose weights choose and predict removals.")
@target_choice_opts
@click.option("--k", "ks", type=IntList(), default="10,20,40,80,160", show_default=True, help="Removal sizes.")
@click.option("--selectors", default="top,bottom,random", show_default=True,
              help="Which removals: top (largest weights), bottom (most negative), random.")
@click.option("--trials", type=click.IntRange(1), default=20, show_default=True, help="Models per removal set.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of target sampling and retraining.")
@click.option("--removals", type=click.Path(dir_okay=False), default=None,
              help="CSV/Parquet of removal sets (set_id, target_id, train_id): retrain without each "
                   "set instead of the top/bottom/random selectors.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Training processes (one torch thread each), as for `dmstore train`.")
@recipe_opt
def counterfactual_cmd(store, fit_id, n_targets, targets, ks, selectors, trials, seed, removals, workers, recipe):
    """Retrain without each target's top/bottom/random k training examples, or without each set
    of a --removals file (with the recipe that trained the fit's models, plug-ins included), and
    store actual vs predicted effects in `counterfactuals`.

    \b
      dmstore counterfactual runs --fit 1 --n-targets 20 --k 10,20,40,80,160 --trials 20 --workers 2
      dmstore counterfactual runs --fit 1 --targets 1400,1401 --selectors top --k 40
      dmstore counterfactual runs --fit 1 --removals sets.csv --trials 10
    """
    from ..analysis.counterfactual import counterfactual, counterfactual_removals
    from ..store import Store
    if removals is not None and (n_targets is not None or targets is not None):
        raise click.UsageError("--removals names its own targets (its target_id column); drop --n-targets/--targets")
    st = Store.open(store, "a")
    if removals is not None:
        r = counterfactual_removals(st, fit_id, removals, trials, seed, recipe, workers, echo=_note)
        click.echo(f"{r['n']} (set, target) pairs from {r['sets']} retrained set(s): predicted vs actual "
                   f"Pearson {r['pearson']:.3f}, Spearman {r['spearman']:.3f}")
        return
    r = counterfactual(st, fit_id, target_choice(st, n_targets, targets), ks,
                       tuple(s for s in selectors.split(",") if s), trials, seed, recipe, workers, echo=_note)
    click.echo(f"{r['n']} removal sets: predicted vs actual Pearson {r['pearson']:.3f}, Spearman {r['spearman']:.3f}")


@click.command("support", cls=Command)
@store_arg
@click.option("--fit", "fit_id", type=int, required=True, help="The fit whose weights to use (ids: `dmstore info`).")
@target_choice_opts
@click.option("--k", "ks", type=IntList(), default="10,20,40,80,160,320,640", show_default=True, help="Search grid.")
@click.option("--trials", type=click.IntRange(1), default=20, show_default=True, help="Models trained per removal set.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of target sampling and retraining.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Training processes (one torch thread each), as for `dmstore train`.")
@recipe_opt
def support_cmd(store, fit_id, n_targets, targets, ks, trials, seed, workers, recipe):
    """Estimate each target's data support by the guided search of Algorithm 1 (grid of k,
    isotonic regression, certification at 1.2x) and store it in `support`.

    \b
      dmstore support runs --fit 1 --n-targets 20
      dmstore support runs --fit 1 --targets 1400-1409
    """
    from ..analysis.support import support
    from ..store import Store
    st = Store.open(store, "a")
    r = support(st, fit_id, target_choice(st, n_targets, targets), ks, trials, seed, recipe, workers, echo=_note)
    click.echo(f"guided search: {r['with_support']} of {r['n']} targets got a support estimate, {r['certified']} "
               f"certified by retraining")


@click.command("embed", cls=Command)
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
    from ..analysis.embed import embed
    from ..store import Store
    r = embed(Store.open(store, "a"), fit_id, pca, clusters, seed)
    click.echo(f"embedded {r['targets']} targets ({r['skipped_zero']} with all-zero weights skipped): "
               f"{r['components']} components (top 5 explain {100 * r['variance_top']:.1f} %), {r['clusters']} clusters")


@click.command("report", cls=Command)
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
    from ..analysis.report import build_report
    from ..store import Store
    click.echo(build_report(Store.open(store), fit_id, out, all_fits=all_fits))


@click.command("attribute", cls=Command)
@store_arg
@click.option("--method", cls=LazyHelp, type=RegistryChoice(registry.names), required=True,
              help=lambda: "The attribution method (a registry entry): " + "; ".join(
                  f"{m.name} ({m.title})" for m in registry.METHODS.values()) + ".")
@click.option("--models", cls=LazyHelp, type=click.IntRange(1), default=None,
              help=lambda: "Full-data models trained and averaged over [default: the method's: " + ", ".join(
                  f"{m.name} {m.default_models}" for m in registry.METHODS.values()) + "].")
@click.option("--proj-dim", type=click.IntRange(1), default=512, show_default=True,
              help="TRAK's random projection dimension.")
@click.option("--damping", type=float, default=0.1, show_default=True,
              help="if: added to the loss Hessian (must exceed its most negative eigenvalue).")
@click.option("--experiment", default=None, help="The experiment whose recipe and fit models to use "
                                                  "(default: the store's only one).")
@click.option("--alpha", type=float, default=None, help="Its subset fraction (default: the only one).")
@click.option("--targets", default="test", show_default=True, help="test | train | all | ids such as 1347-1400.")
@click.option("--name", default=None, help="The fit's estimator name [default: the method].")
@click.option("--library", type=RegistryChoice(registry.libraries), default=None,
              help="trak: traker (default) or dattri (TRAKAttributor); if: dmstore (default, exact Hessian "
                   "in column blocks) or dattri (IFAttributorExplicit, small models only).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the full-data models.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto: cuda when a GPU is present, else cpu.")
@recipe_opt
def attribute_cmd(store, method, models, proj_dim, damping, experiment, alpha, targets, name, library, seed, device, recipe):
    """Compute a baseline attribution method with the recipe that trained the store's models
    (K full-data models trained once and cached in the store) and store its scores as a fit,
    calibrated on the fit models and scored on the eval models like any other. A rerun with the
    same settings is a no-op; an interrupted run reuses the trained models. Needs
    `pip install 'dmstore[attribution]'` (dattri, traker) for trak, tracin and graddot.

    \b
      dmstore attribute runs --method trak --models 10 --proj-dim 512
      dmstore attribute runs --method if
      dmstore attribute runs --method tracin --targets 1347-1400
      dmstore attribute runs --method trak --library dattri --name trak_dattri
      dmstore query runs "SELECT estimator, lds, n_lds, lds_common FROM estimator_comparison"
    """
    from ..attribution import attribute
    from ..store import Store
    r = attribute(Store.open(store, "a"), method, models, proj_dim, experiment, alpha, targets, device, name,
                  library, seed, recipe, damping=damping)
    click.echo(("already stored: " if r.reused else "") + r.summary())


@click.command("frontier", cls=Command)
@store_arg
@click.option("--experiment", required=True, help="Experiment name.")
@click.option("--alpha", type=float, required=True, help="Subsampling fraction.")
@click.option("--models", "models", type=IntList(), default=None, metavar="N,N,…",
              help="Shares of the fit + val models to fit on (nested, seeded: `fit --models`) "
                   "[default: 250, 500, 1000, … doubling, then all of them].")
@click.option("--estimators", default="lasso,diff_means", show_default=True,
              help="Regression estimators to fit on each share (attribution fits already stored for the "
                   "experiment and alpha join the table as they are).")
@click.option("--targets", default="test", show_default=True, help="Targets of every fit: ids like 1400,1500-1510 or a split.")
@click.option("--lambdas", "n_lambdas", type=click.IntRange(1), default=30, show_default=True, help="lasso: path length.")
@click.option("--path-patience", type=click.IntRange(1), default=None, metavar="K",
              help="lasso: leave the path after K rises of the validation MSE (as for `fit`).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
              help="table: aligned text; csv or json (with the training rate) for scripts.")
def frontier_cmd(store, experiment, alpha, models, estimators, targets, n_lambdas, path_patience, fmt):
    """The cost-quality frontier: fit each estimator on nested shares of the models (reusing
    identical stored fits), then print every fit of the experiment and alpha (attribution
    methods included) with its held-out LDS and 95 % CI against the models it used and its
    compute seconds (training of the models it used at the rate the store's training commits
    recorded, plus its fit; an attribution method's recorded compute). The same table is one
    query away: SELECT * FROM frontier('E', A, train_s_per_model := S).

    \b
      dmstore frontier demo-out/store --experiment digits --alpha 0.5
      dmstore frontier runs --experiment fashion --alpha 0.5 --models 500,1000,2000,4000 --path-patience 3
      dmstore frontier runs --experiment digits --alpha 0.5 --estimators diff_means --format csv > frontier.csv
    """
    import csv
    import json
    import sys

    from ..analysis.frontier import frontier
    from ..store import Store
    ests = tuple(e for e in estimators.split(",") if e)
    from ..fit.estimators import ESTIMATORS
    bad = [e for e in ests if e not in ESTIMATORS]
    if bad or not ests:
        raise click.UsageError(f"--estimators: unknown {', '.join(bad) or '(none given)'}; choose from "
                               f"{', '.join(ESTIMATORS)}")
    out = frontier(Store.open(store, "a"), experiment, alpha, models, ests, targets, n_lambdas=n_lambdas,
                   path_patience=path_patience, echo=lambda s: click.echo(s, err=True))
    rows = out["rows"]
    if fmt == "json":
        click.echo(json.dumps({"train_s_per_model": out["train_s_per_model"], "rows": rows}, default=str))
        return
    if fmt == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["fit_id"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return
    rate = out["train_s_per_model"]
    click.echo(f"{experiment} at alpha {alpha}: " + (f"{rate:.3f} s to train a model (the store's training commits)"
                                                     if rate else "no training times recorded (compute = fit time)"))
    click.echo(f"{'fit':>4}  {'estimator':<20} {'kind':<11} {'models':>8}  {'LDS':>6}  {'95 % CI':<16} "
               f"{'targets':>7}  {'compute s':>10}")
    f = lambda v, p=3: "" if v is None else f"{v:.{p}f}"   # noqa: E731
    for r in rows:
        ci = "" if r["lds_ci_lo"] is None else f"[{r['lds_ci_lo']:.3f}, {r['lds_ci_hi']:.3f}]"
        click.echo(f"{r['fit_id']:>4}  {r['estimator']:<20} {r['kind']:<11} {r['models_used']:>8,}  {f(r['lds']):>6}  "
                   f"{ci:<16} {r['n_lds'] if r['n_lds'] is not None else '':>7}  {f(r['compute_s'], 1):>10}")
