"""dmstore command line (the `dmstore` script; `cli.py` at the top of a checkout re-exports it): a
thin face over the library, one module per command group over shared option types (`options`)
and one error mapping (`base`). Errors the library raises print `Error: …` and exit 1; usage
errors exit 2."""
from __future__ import annotations

import click

from . import analysis, fit, ingest, query, serve, store, train
from .base import Group


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
    from ..progress import set_quiet
    set_quiet(quiet)


for _cmd in (store.init, ingest.ingest, query.query, store.info, store.schema, query.export, fit.fit_cmd,
             train.train_cmd, analysis.counterfactual_cmd, analysis.support_cmd, analysis.report_cmd, analysis.attribute_cmd,
             train.demo_cmd, analysis.embed_cmd, query.views, store.compact_cmd, query.macros, store.log_cmd,
             store.vacuum, store.migrate, serve.serve_cmd, analysis.frontier_cmd):
    cli.add_command(_cmd)


def main():
    import warnings
    warnings.formatwarning = lambda msg, *a, **k: f"Warning: {msg}\n"  # no source lines on a CLI
    cli(prog_name="dmstore")


if __name__ == "__main__":
    main()
