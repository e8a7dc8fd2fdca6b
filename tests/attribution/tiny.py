"""A small real MLP recipe for the attribution tests: 60 train + 20 test digits, 64 → 6 → 10
(460 parameters, so dattri's explicit Hessian fits in memory), trained by dmstore's batched
trainer like the built-in recipes."""
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from dmstore.recipes.digits import digits_split
from dmstore.recipes.mlp import BatchedMLP


@dataclass
class TinyMLP(BatchedMLP):
    hidden: int = 6
    epochs: int = 4
    batch_size: int = 10
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-2
    split_seed: int = 0
    name: str = "tinymlp"

    def __post_init__(self):
        X, y, d, _ = digits_split(self.split_seed)
        self.X = np.concatenate([X[:60], X[d:d + 20]])
        self.y = np.concatenate([y[:60], y[d:d + 20]])
        self.d, self.n = 60, 80

    def examples(self):
        return pa.table({"example_id": np.arange(self.n, dtype=np.int32),
                         "split": ["train"] * self.d + ["test"] * (self.n - self.d),
                         "label": self.y.astype(np.int32)})


TINY_MLP = TinyMLP()
