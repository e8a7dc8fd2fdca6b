"""The fit command: datamodels by regression (or any estimator), optionally sharded."""
from __future__ import annotations

import click

from ..fit.estimators import ESTIMATORS
from .base import Command
from .options import Shard, store_arg


@click.command("fit", cls=Command)
@store_arg
@click.option("--experiment", required=True, help="Experiment to fit.")
@click.option("--alpha", type=float, required=True, help="Subsampling fraction to fit.")
@click.option("--estimator", type=click.Choice(list(ESTIMATORS)),
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
@click.option("--solver", type=click.Choice(["auto", "workingset", "activeset", "fista"]), default="auto",
              show_default=True,
              help="lasso: auto = activeset for test targets where fit models outnumber train examples, "
                   "else workingset. activeset = FISTA with float64-anchored products, then "
                   "batched Newton steps on each target's support solved by preconditioned conjugate "
                   "gradients, certified by the full duality gap (fast when models are not >> train "
                   "examples); workingset = sub-problems on a growing set of features; fista = FISTA alone. "
                   "Train targets (eq. 9): working sets under auto and workingset (sub-problems formed "
                   "from the masks' bits, one pass over the masks per round), FISTA under fista and activeset.")
@click.option("--path-patience", type=click.IntRange(1), default=None, metavar="K",
              help="lasso, ridge: a target leaves the lambda path after K consecutive lambdas whose validation "
                   "MSE is above its best (the smallest lambdas of a long path are the slowest and are rarely "
                   "selected); the lambdas it skips have no rows in fits. Default: the whole path.")
@click.option("--models", "models", type=click.IntRange(3), default=None, metavar="N",
              help="Fit on N of the fit + val models: the first N of a seeded order of model ids (--seed), "
                   "so a smaller share is inside every larger one (for cost-quality curves; see "
                   "`dmstore frontier`). Default: every model.")
@click.option("--val-fraction", type=float, default=0.1, show_default=True,
              help="Share of fit models held out for lambda selection when the store has no val models.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of that split.")
@click.option("--shard", type=Shard(), default=None, metavar="K/N",
              help="Fit only the K-th of N shares of the targets (K = 0..N-1), e.g. from a SLURM array "
                   "job; needs --run. The N shards form one fit.")
@click.option("--run", default=None, metavar="NAME",
              help="Name of the sharded run this shard belongs to (the same for all N shards).")
def fit_cmd(store, experiment, alpha, estimator, n_lambdas, lambda_min_ratio, targets, device, dtype,
            keep_path, tol, max_iter, solver, path_patience, models, val_fraction, seed, shard, run):
    """Fit one datamodel per target example, all sharing the mask matrix, and write the fits
    and weights tables.

    With --shard K/N --run NAME, N processes (any machines sharing the store) each fit a share
    of the targets; together they form one fit with one fit_id, which appears in fit_runs when
    the last shard commits. Each shard reads the store version the run started at, commits
    atomically, and is skipped when rerun after it committed.

    \b
      dmstore fit runs --experiment cifar10 --alpha 0.5
      dmstore fit runs --experiment cifar10 --alpha 0.5 --targets train --lambdas 15 --keep-path
      dmstore fit runs --experiment cifar10 --alpha 0.5 --path-patience 3
      dmstore fit runs --experiment cifar10 --alpha 0.5 --estimator diff_means
      dmstore fit runs --experiment cifar10 --alpha 0.5 --models 1000      # 1,000 of the models, nested
      dmstore fit runs --experiment cifar10 --alpha 0.5 --shard $SLURM_ARRAY_TASK_ID/8 --run lasso-a50
    """
    from ..fit import fit
    from ..store import Store
    if (shard is None) != (run is None):
        raise click.UsageError("--shard K/N and --run NAME go together")
    r = fit(Store.open(store, "a"), experiment, alpha, estimator, targets, n_lambdas, lambda_min_ratio,
            device, dtype, keep_path, tol, max_iter, val_fraction, seed, shard=shard, run=run,
            solver=solver, path_patience=path_patience, models=models)
    if shard is not None:
        click.echo(f"run {run} shard {shard[0]}/{shard[1]}: " + (
            "already committed, not fitted again" if r.reused else r.summary()))
    else:
        click.echo(r.summary())
