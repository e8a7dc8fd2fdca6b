"""Shared fixtures: seeded synthetic stores (the data come from `dmstore.testing`)."""
from __future__ import annotations

import os

# Under pytest-xdist (the README's `-n 2`), each worker gets its share of the cores: torch's and
# OpenMP's thread pools sized to it before torch is imported, and inherited by the CLI processes
# the tests start, so two workers do not fight over two cores with four spinning threads.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))
    os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from dmstore import Store  # noqa: E402
from dmstore.testing import Synth  # noqa: E402


@pytest.fixture
def synth():
    return Synth()


@pytest.fixture
def store(tmp_path, synth):
    return Store.create(tmp_path / "store", train_size=synth.d, test_size=synth.n_test)


@pytest.fixture
def filled(store, synth):
    roles = np.array(["fit"] * 40 + ["val"] * 10 + ["eval"] * 10, dtype=object)
    store.append("exp", synth.alpha, synth.masks, synth.margins, synth.targets, seeds=synth.seeds,
                 roles=roles)
    return store


SHARED_SESSION_FIXTURES = {"serve"}   # test folders whose session fixture (a trained store) all their files share


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile` (the README's test command), with one change: the files of a folder in
    SHARED_SESSION_FIXTURES go to one worker as a unit, so its session fixture is built once (each
    other file's tests run on one worker, so its module fixtures — a trained store, a Spark
    session — are built once). Grouping by `xdist_group` marks (`--dist loadgroup`) does not work
    with pytest 9.2's node ids (pytest-xdist issue 1386)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByFile(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            parts = path.split("/")
            return parts[-2] if len(parts) > 1 and parts[-2] in SHARED_SESSION_FIXTURES else path

    return ByFile(config, log)
