"""A small real MLP recipe for the attribution tests: 60 train + 20 test digits, 64 → 6 → 10
(460 parameters, so dattri's explicit Hessian fits in memory), trained by dmstore's batched
trainer like the built-in recipes."""
from dataclasses import dataclass

import numpy as np

from dmstore.recipes.digits import digits_split
from dmstore.recipes.mlp import BatchedMLP


@dataclass
class TinyMLP(BatchedMLP):
    hidden: int = 6
    epochs: int = 4
    batch_size: int = 10
    name: str = "tinymlp"

    def __post_init__(self):
        X, y, d, _ = digits_split(self.split_seed)
        self.X = np.concatenate([X[:60], X[d:d + 20]])
        self.y = np.concatenate([y[:60], y[d:d + 20]])
        self.d, self.n = 60, 80
        self.source_index = np.arange(80)

    def examples(self):
        return self.examples_table()


TINY_MLP = TinyMLP()
