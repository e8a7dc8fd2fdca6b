"""Shared fixtures: seeded synthetic stores and a byte-level snapshot of a store directory."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from dmstore import Store


def alpha_masks(rng, m: int, d: int, alpha: float) -> np.ndarray:
    """bool [m, d] with exactly round(alpha*d) ones per row."""
    k = int(round(alpha * d))
    order = np.argsort(rng.random((m, d)), axis=1)
    masks = np.zeros((m, d), bool)
    np.put_along_axis(masks, order[:, :k], True, axis=1)
    return masks


def snapshot(root: Path) -> dict:
    """relative path → sha256 of every file of the store's data (the private .tmp/, _leases/
    (writers' heartbeats), .lock and .next_model_id — ids reserved by writers, never reused —
    excluded)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        if rel.parts[:1] in ((".tmp",), ("_leases",)):
            continue
        for f in files:
            if f in (".lock", ".next_model_id"):
                continue
            p = Path(dirpath) / f
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def write_release(dirpath: Path, masks, train=None, test=None, pct: int = 50) -> Path:
    """The paper's release layout: train_masks_<pct>pct.npy and the margin files given."""
    dirpath.mkdir(exist_ok=True)
    np.save(dirpath / f"train_masks_{pct}pct.npy", masks)
    if train is not None:
        np.save(dirpath / f"train_margins_{pct}pct.npy", train)
    if test is not None:
        np.save(dirpath / f"test_margins_{pct}pct.npy", test)
    return dirpath


class Synth:
    """A seeded synthetic experiment: masks, margins (linear in the mask + noise), seeds."""

    def __init__(self, m=60, d=40, n_test=12, alpha=0.5, seed=0, f16=False):
        rng = np.random.default_rng(seed)
        self.d, self.n_test, self.alpha = d, n_test, alpha
        self.masks = alpha_masks(rng, m, d, alpha)
        theta = rng.normal(size=(d, d + n_test)) * (rng.random((d, d + n_test)) < 0.2)
        Y = self.masks @ theta + rng.normal(scale=0.5, size=(m, d + n_test)) + 1.0
        self.margins = Y.astype(np.float16 if f16 else np.float32)
        self.seeds = rng.integers(0, 2**31, size=m)
        self.targets = np.arange(d + n_test)


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
