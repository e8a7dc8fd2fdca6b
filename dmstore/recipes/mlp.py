"""Many small MLPs at once: the batched trainer behind the digits and MNIST-5k recipes, and what
`dmstore attribute` needs of them (full-data models as torch modules, per-epoch checkpoints,
the per-example output and loss, penultimate features).

K models train together through batched matmuls (`torch.baddbmm` over stacked weights), each
with its own `torch.Generator` for initialisation and minibatch order, so a model's result
depends only on its mask and seed. Subclasses provide `X` (float32 [n, p], train rows first),
`y` (int64 [n]), `d` (train examples) and the hyperparameters below.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch
from torch import nn


class MLP(nn.Module):
    """One p → hidden → classes ReLU network, with the weights of one model of a batch."""

    def __init__(self, p: int, hidden: int, classes: int):
        super().__init__()
        self.fc1 = nn.Linear(p, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate representation [n, hidden]."""
        return torch.relu(self.fc1(x))

    def forward(self, x):
        return self.fc2(self.features(x))


def margins_of(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Correct-class logit minus the highest other logit, per example (logits [..., n, c])."""
    correct = logits.gather(-1, y[..., None])[..., 0]
    other = logits.scatter(-1, y[..., None], float("-inf")).amax(-1)
    return correct - other


@dataclass
class BatchedMLP:
    """The hyperparameters (per-recipe constants, so runs are comparable); subclasses override
    the ones that differ and set `X`, `y`, `d`, `n`, `source_index` in `__post_init__`."""
    hidden: int = 128
    epochs: int = 20
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-2
    split_seed: int = 0
    name: str = "mlp"
    classes: int = 10

    def examples_table(self, **extra) -> pa.Table:
        """example_id, split (train ids first, then test), label, group_key (none), source_index
        and the `extra` columns."""
        return pa.table({
            "example_id": np.arange(self.n, dtype=np.int32),
            "split": ["train"] * self.d + ["test"] * (self.n - self.d),
            "label": self.y.astype(np.int32),
            "group_key": pa.nulls(self.n, pa.string()),
            "source_index": self.source_index.astype(np.int32),
            **extra,
        })

    def config(self) -> dict:
        """Every setting that changes a trained model (fingerprinted into the models' source)."""
        return {"hidden": self.hidden, "epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
                "momentum": self.momentum, "weight_decay": self.weight_decay, "split_seed": self.split_seed}

    def train(self, masks: np.ndarray, seeds: np.ndarray) -> dict:
        """masks: bool [k, d]; seeds: int [k] → margins float32 [k, n], accuracies [k].
        Models are trained together in groups of equal subset size (equal steps per epoch)."""
        sizes = masks.sum(1)
        if (sizes != sizes[0]).any():
            out = {"margins": np.empty((masks.shape[0], self.n), np.float32),
                   "train_accuracy": np.empty(masks.shape[0]), "test_accuracy": np.empty(masks.shape[0])}
            for size in np.unique(sizes):
                rows = np.flatnonzero(sizes == size)
                part = self._train_equal(masks[rows], np.asarray(seeds)[rows])
                for key in out:   # (its params are not kept)
                    out[key][rows] = part[key]
            return out
        out = self._train_equal(masks, seeds)
        del out["params"]
        return out

    def _train_equal(self, masks: np.ndarray, seeds: np.ndarray, checkpoints: list | None = None) -> dict:
        """Train models of equal subset size together; `checkpoints` (a list) receives each
        epoch's parameters [W1, b1, W2, b2] (stacked over the k models, detached copies)."""
        k = masks.shape[0]
        X, y = torch.from_numpy(self.X), torch.from_numpy(self.y)
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        h, c, p_in = self.hidden, self.classes, self.X.shape[1]

        def init(fan_in, shape):
            bound = 1.0 / fan_in ** 0.5
            return torch.stack([(torch.rand(shape, generator=g) * 2 - 1) * bound for g in gens])
        W1, b1 = init(p_in, (p_in, h)), init(p_in, (1, h))
        W2, b2 = init(h, (h, c)), init(h, (1, c))
        params = [W1, b1, W2, b2]
        for p in params:
            p.requires_grad_(True)
        bufs = [torch.zeros_like(p) for p in params]
        subsets = [np.flatnonzero(m) for m in masks]
        size = len(subsets[0])
        steps = size // self.batch_size
        for _ in range(self.epochs):
            # each model its own minibatch order over its own subset (equal-size subsets)
            order = torch.stack([torch.from_numpy(s)[torch.randperm(len(s), generator=g)[:size]]
                                 for s, g in zip(subsets, gens)])
            for st in range(steps):
                idx = order[:, st * self.batch_size:(st + 1) * self.batch_size]       # [k, B]
                xb, yb = X[idx], y[idx]                                               # [k, B, p]
                z = torch.relu(torch.baddbmm(b1, xb, W1))
                logits = torch.baddbmm(b2, z, W2)
                loss = torch.nn.functional.cross_entropy(logits.reshape(-1, c), yb.reshape(-1),
                                                         reduction="sum") / self.batch_size
                grads = torch.autograd.grad(loss, params)
                with torch.no_grad():
                    for p, g_, buf in zip(params, grads, bufs):
                        buf.mul_(self.momentum).add_(g_ + self.weight_decay * p)
                        p.sub_(self.lr * buf)
            if checkpoints is not None:
                checkpoints.append([p.detach().clone() for p in params])
        with torch.no_grad():   # margins on every example, a few models at a time (hidden [c, n, h] ≤ 2^26 floats)
            margins = np.empty((k, self.n), np.float32)
            c_ = max(1, (1 << 26) // (self.n * h))
            for lo in range(0, k, c_):
                sl = slice(lo, lo + c_)
                z = torch.relu(torch.baddbmm(b1[sl], X.expand(len(W1[sl]), -1, -1), W1[sl]))
                logits = torch.baddbmm(b2[sl], z, W2[sl])
                margins[sl] = margins_of(logits, y.expand(len(W1[sl]), -1)).numpy()
        right = margins > 0
        return {"margins": margins, "params": [p.detach() for p in params],
                "train_accuracy": right[:, : self.d].mean(1), "test_accuracy": right[:, self.d:].mean(1)}

    # ------------------------------------------------------------------ for `dmstore attribute`
    def model(self) -> MLP:
        """An untrained model of this recipe's architecture."""
        return MLP(self.X.shape[1], self.hidden, self.classes)

    def _module(self, params, i: int) -> MLP:
        W1, b1, W2, b2 = params
        m = self.model()
        with torch.no_grad():
            m.fc1.weight.copy_(W1[i].T)
            m.fc1.bias.copy_(b1[i, 0])
            m.fc2.weight.copy_(W2[i].T)
            m.fc2.bias.copy_(b2[i, 0])
        return m.eval()

    def full_models(self, k: int, seed: int = 0) -> list[dict]:
        """K models trained on every train example with this recipe's settings, seeds derived
        from `seed`: dicts with `model` (an nn.Module in eval mode), `checkpoints` (its state
        dict after each epoch) and `lrs` (the learning rate of each epoch, for TracIn-CP)."""
        from ..train.plan import h64
        seeds = np.array([h64("full-data model", seed, i) >> 1 for i in range(k)], np.int64)
        ckpts: list = []
        out = self._train_equal(np.ones((k, self.d), bool), seeds, checkpoints=ckpts)
        models = []
        for i in range(k):
            models.append({"model": self._module(out["params"], i), "seed": int(seeds[i]),
                           "checkpoints": [self._module(c, i).state_dict() for c in ckpts],
                           "lrs": [self.lr] * len(ckpts)})
        return models

    def attribution_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs float32 [n, p], labels int64 [n]) of every example, in example-id order."""
        return torch.from_numpy(self.X), torch.from_numpy(self.y)

    def output(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The per-example output datamodels predict: the margin (as `train` stores it)."""
        return margins_of(logits, y)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The per-example training loss (cross-entropy; weight decay is not per example)."""
        return torch.nn.functional.cross_entropy(logits, y, reduction="none")

    def features(self, model: MLP, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features [n, hidden] (representation similarity)."""
        with torch.no_grad():
            return model.features(x)
