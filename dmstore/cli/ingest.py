"""Ingest commands: the paper's release, a reference-implementation store, Parquet files."""
from __future__ import annotations

import click

from .base import Command, Group
from .options import key_values, mode_opt, store_arg


@click.group(cls=Group)
def ingest():
    """Ingest models from the paper's release, a reference store, or Parquet files."""


alpha_opt = click.option("--alpha", type=float, required=True, help="Subsampling fraction, e.g. 0.5.")
experiment_opt = click.option("--experiment", required=True, help="Experiment name to file the models under.")


@ingest.command("release", cls=Command)
@store_arg
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@alpha_opt
@experiment_opt
@click.option("--eval-last", type=click.IntRange(0), default=0, show_default=True,
              help="Mark the last K rows as eval models.")
@click.option("--val-last", type=click.IntRange(0), default=0, show_default=True,
              help="Mark the K rows before the eval rows as val models.")
@mode_opt
def release(store, directory, alpha, experiment, eval_last, val_last, mode):
    """Ingest train_masks_<P>pct.npy, train_margins_<P>pct.npy and test_margins_<P>pct.npy.

    \b
      dmstore ingest release runs ./cifar10 --alpha 0.5 --experiment cifar10 --eval-last 10000
    """
    from ..ingest import ingest_release
    from ..store import Store
    click.echo(ingest_release(Store.open(store, "a"), directory, alpha, experiment, eval_last, val_last,
                              mode).summary())


@ingest.command("reference", cls=Command)
@store_arg
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@alpha_opt
@experiment_opt
@click.option("--margins", "margin_targets", multiple=True, metavar="NAME=SPLIT",
              help="Map margin array NAME(.npy) to the train or test split when widths are ambiguous.")
@click.option("--eval-last", type=click.IntRange(0), default=0, show_default=True,
              help="Mark the last K completed rows as eval.")
@click.option("--val-last", type=click.IntRange(0), default=0, show_default=True,
              help="Mark K rows before those as val.")
@mode_opt
def reference(store, directory, alpha, experiment, margin_targets, eval_last, val_last, mode):
    """Ingest a reference-implementation store (masks.npy, margin arrays, _completed.npy);
    only completed rows are read.

    \b
      dmstore ingest reference runs ./train_store --alpha 0.5 --experiment resnet9
      dmstore ingest reference runs ./train_store --alpha 0.5 --experiment r9 --margins logits=test
    """
    from ..ingest import ingest_reference
    from ..store import Store
    mapping = {}
    for item in margin_targets:
        name, sep, split = item.partition("=")
        if not sep or split not in ("train", "test"):
            raise click.BadParameter(f"{item!r}: expected NAME=train or NAME=test", param_hint="--margins")
        mapping[name.removesuffix(".npy")] = split
    click.echo(ingest_reference(Store.open(store, "a"), directory, alpha, experiment, eval_last, val_last,
                                mode, mapping).summary())


@ingest.command("parquet", cls=Command)
@store_arg
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@mode_opt
def parquet(store, files, mode):
    """Ingest Parquet or Arrow IPC files that follow schemas/: model files (with a mask column)
    and margin files (model_id, example_id, margin).

    \b
      dmstore ingest parquet runs models.parquet margins.parquet
    """
    from ..ingest import ingest_parquet
    from ..store import Store
    click.echo(ingest_parquet(Store.open(store, "a"), files, mode).summary())


@ingest.command("scores", cls=Command)
@store_arg
@click.argument("file", type=click.Path(exists=True))
@click.option("--name", required=True, help="The method's name: the fit's estimator (e.g. trak, if, tracin).")
@experiment_opt
@alpha_opt
@click.option("--layout", type=click.Choice(["target-major", "train-major"]), default=None,
              help="Rows are targets [n_targets, d] (default; captum) or train examples [d, n_targets] "
                   "(dattri, traker; a TRAK save directory is train-major).")
@click.option("--targets", default=None, metavar="IDS",
              help="The targets of a dense matrix, in ascending id order: test (default), train, or ids "
                   "like 1347-1796. Triples name their own.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A setting of the method to record with the fit (repeat), e.g. proj_dim=512.")
@click.option("--top-k", type=click.IntRange(1), default=None,
              help="Keep only the K largest |scores| of each target (default: every non-zero score).")
@click.option("--trak-experiment", default=None, metavar="NAME",
              help="The experiment of a TRAK save directory that holds several.")
@click.option("--mode", type=click.Choice(["error", "overwrite"]), default="error", show_default=True,
              help="error: refuse when a different fit of this name exists (the same file again is a "
                   "no-op); overwrite: replace it.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where the calibration and eval predictions are computed.")
@click.option("--calibration-models", type=click.IntRange(0), default=512, show_default=True,   # = ingest.scores.CALIBRATION_MODELS
              help="The most fit models the per-target calibration reads (a seeded sample beyond; 0: all). "
                   "The LDS does not depend on it; MSE barely does.")
def scores(store, file, name, experiment, alpha, layout, targets, params, top_k, trak_experiment, mode, device,
           calibration_models):
    """Bring any attribution method's scores in as a fit: calibrated per target on the fit models,
    scored on the eval models, and open to every analytic (estimator_comparison, topk_neighbors,
    dm_removal_effect, counterfactual --fit, report …).

    FILE: .npy or .pt (dense; memory-mapped), a TRAK save directory or its scores/*.mmap, or
    Parquet/CSV triples target_id, train_id, score.

    \b
      dmstore ingest scores runs trak.npy --name trak --experiment digits --alpha 0.5 --layout train-major
      dmstore ingest scores runs ./trak_results --name trak --experiment digits --alpha 0.5 --param proj_dim=512
      dmstore ingest scores runs if.pt --name if --experiment digits --alpha 0.5 --layout train-major
      dmstore ingest scores runs scores.parquet --name mine --experiment digits --alpha 0.5 --top-k 100
      dmstore query runs "SELECT estimator, lds, n_lds FROM estimator_comparison"
    """
    from ..ingest import ingest_scores
    from ..store import Store
    kv = key_values(params, "KEY=VALUE", "--param")
    r = ingest_scores(Store.open(store, "a"), file, name, experiment, alpha, layout, targets, kv, mode, top_k,
                      trak_experiment, device, calibration_models=calibration_models or None)
    click.echo(("already stored: " if r.reused else "") + r.summary())
