"""Seeded synthetic data for tests and benchmarks: α-subset masks, a small linear experiment,
a byte-level snapshot of a store directory, the paper's release layout, and benchmark-sized
datamodel data with a chosen R².

    from dmstore.testing import Synth, alpha_masks, snapshot
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np


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


def tree(root: Path) -> dict:
    """relative path → sha256 of every file, or 'dir', of everything under `root`: private
    folders, temp files, reserved ids and leases included (what "the store directory is as it
    was" means)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for d in dirs:
            out[str((Path(dirpath) / d).relative_to(root))] = "dir"
        for f in files:
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


def block_masks(rng, m: int, d: int, alpha: float = 0.5) -> np.ndarray:
    """bool [m, d], exactly round(alpha*d) ones per row (drawn in row blocks to bound memory)."""
    k = int(round(alpha * d))
    out = np.zeros((m, d), bool)
    for lo in range(0, m, 2048):
        hi = min(m, lo + 2048)
        idx = np.argpartition(rng.random((hi - lo, d), dtype=np.float32), k, axis=1)[:, :k]
        np.put_along_axis(out[lo:hi], idx, True, axis=1)
    return out


def datamodel_data(m=20000, d=2000, n=1000, alpha=0.5, density=0.05, r2=0.4, seed=0):
    """masks bool [m, d], margins float32 [m, n], true weights float32 [d, n]."""
    rng = np.random.default_rng(seed)
    X = block_masks(rng, m, d, alpha)
    theta = (rng.standard_t(df=3, size=(d, n)) * (rng.random((d, n)) < density)).astype(np.float32)
    signal = X.astype(np.float32) @ theta
    sig_var = signal.var(0)
    noise = rng.normal(size=(m, n)).astype(np.float32) * np.sqrt(sig_var * (1 - r2) / r2)
    Y = signal + noise + 2.0
    return X, Y.astype(np.float32), theta
