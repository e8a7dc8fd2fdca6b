"""Training commands: train (a recipe's models into a store) and demo (the whole pipeline on digits)."""
from __future__ import annotations

import click

from ..store.validate import ROLES
from .base import Command
from .options import Shard, store_arg


@click.command("train", cls=Command)
@store_arg
@click.option("--recipe", default="digits", show_default=True,
              help="Built-in recipe (digits, mnist5k, fashion, cifar10) or your own as module:attribute.")
@click.option("--data", type=click.Path(exists=True, file_okay=False), default=None, metavar="DIR",
              help="Folder of the recipe's data files, for recipes that read files (fashion: the four "
                   "Fashion-MNIST idx files; default: DMSTORE_FASHION_DATA or Debian's "
                   "/usr/share/datasets/fashion-mnist).")
@click.option("--alpha", type=float, default=0.5, show_default=True, help="Subsampling fraction.")
@click.option("--models", type=click.IntRange(1), default=1000, show_default=True, help="Models in the run.")
@click.option("--batch", type=click.IntRange(1), default=500, show_default=True,
              help="Models trained together and ingested as one batch.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the mask plan and of each model's generator (same seed: same models).")
@click.option("--experiment", default=None, help="Experiment name (default: the recipe's name).")
@click.option("--repeats", type=click.IntRange(1), default=1, show_default=True,
              help="Models per mask (they share a mask_id).")
@click.option("--role", type=click.Choice(list(ROLES)), default="fit", show_default=True,
              help="fit and val models train datamodels; eval models only test them.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Processes (one torch thread each).")
@click.option("--shard", type=Shard(), default=None, metavar="K/N",
              help="Train only the K-th of N disjoint shares of the plan (K = 0..N-1), e.g. from a "
                   "SLURM array job: the N shards together train exactly the unsharded run's models.")
def train_cmd(store, recipe, data, alpha, models, batch, seed, experiment, repeats, role, workers, shard):
    """Train many models on alpha-subsets and ingest every finished batch; rerunning the same
    command resumes and never duplicates a model. Creates STORE from the recipe if missing.

    \b
      dmstore train runs --recipe digits --alpha 0.5 --models 20000 --workers 2
      dmstore train runs --recipe digits --models 500 --repeats 5 --role eval
      dmstore train mnist --recipe mnist5k --models 10000 --workers 2
      dmstore train f --recipe fashion --models 20          # apt-get install dataset-fashion-mnist
      dmstore train runs --recipe mypkg.recipes:MyRecipe --models 100
      dmstore train runs --models 20000 --shard $SLURM_ARRAY_TASK_ID/8      # one of 8 array tasks
    """
    from ..train import train
    click.echo(train(store, recipe, alpha, models, batch, seed, experiment, repeats, role, workers,
                     shard=shard, data=data).summary())


@click.command("demo", cls=Command)
@click.option("--out", default="demo-out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the store and the report.")
@click.option("--models", type=click.IntRange(100), default=4000, show_default=True,
              help="Models to train (fit + val); 400 held-out eval models come on top.")
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True, help="Training processes (one torch thread each).")
@click.option("--baselines/--no-baselines", default=True, show_default=True,
              help="Also compute TRAK, influence functions, TracIn-CP, Grad-Dot and representation similarity.")
def demo_cmd(out, models, workers, baselines):
    """Train digits MLPs, fit their datamodels, compute the attribution baselines, check them all
    on held-out models and retrained counterfactuals, and write an HTML report (a few minutes on
    2 cores, no download).

    \b
      dmstore demo
      dmstore demo --no-baselines
      dmstore demo --out /tmp/dm --models 20000
    """
    from ..demo import demo
    demo(out, models, workers=workers, baselines=baselines, echo=click.echo)
