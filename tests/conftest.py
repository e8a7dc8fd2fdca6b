"""Shared fixtures: seeded synthetic stores (the data come from `dmstore.testing`)."""
from __future__ import annotations

import numpy as np
import pytest

from dmstore import Store
from dmstore.testing import Synth


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
