"""Benchmark: the ground truth's cost. Models per minute of the batched digits recipe (K models
through one set of batched matmuls, `recipes.mlp.BatchedMLP`) against training the same MLP one
model at a time in a plain torch loop (nn.Module, torch.optim.SGD with momentum and weight
decay, a DataLoader-style minibatch loop: what a retraining utility such as dattri's does),
same data, epochs, batch size and thread count, in the same run.

    python bench/bench_train.py                     # 500 batched vs 20 one at a time, 3 repeats
    python bench/bench_train.py --quick
"""
from __future__ import annotations

import numpy as np
import torch
from timing import options, timed

from dmstore.recipes.digits import DigitsMLP
from dmstore.train.plan import plan_models


def one_at_a_time(rec: DigitsMLP, masks: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Test accuracy of each model trained alone (the plain loop)."""
    X, y = torch.from_numpy(rec.X), torch.from_numpy(rec.y)
    acc = []
    for mask, seed in zip(masks, seeds):
        g = torch.Generator().manual_seed(int(seed))
        torch.manual_seed(int(seed))
        net = rec.model()
        opt = torch.optim.SGD(net.parameters(), lr=rec.lr, momentum=rec.momentum, weight_decay=rec.weight_decay)
        idx = torch.from_numpy(np.flatnonzero(mask))
        for _ in range(rec.epochs):
            order = idx[torch.randperm(len(idx), generator=g)]
            for st in range(len(idx) // rec.batch_size):
                b = order[st * rec.batch_size:(st + 1) * rec.batch_size]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(X[b]), y[b]).backward()
                opt.step()
        with torch.no_grad():
            acc.append((net(X[rec.d:]).argmax(1) == y[rec.d:]).float().mean().item())
    return np.array(acc)


def main():
    a = options(__doc__, quick={"batched": 100, "single": 5, "repeats": 1},
                batched=(500, "models trained batched"), single=(20, "models trained one at a time"),
                repeats=(3, "runs of each (median)"), threads=(2, "torch threads for both"))
    torch.set_num_threads(a.threads)
    rec = DigitsMLP()
    masks, seeds, _ = plan_models("digits", 0.5, "fit", 0, np.arange(a.batched), rec.d)
    t_b, out = timed(lambda: rec.train(masks, seeds), a.repeats)
    t_s, acc = timed(lambda: one_at_a_time(rec, masks[:a.single], seeds[:a.single]), a.repeats)
    rate_b, rate_s = 60 * a.batched / t_b, 60 * a.single / t_s
    print(f"digits MLP 64-{rec.hidden}-10, {rec.epochs} epochs, batch {rec.batch_size}, alpha 0.5, "
          f"{a.threads} torch threads, median of {a.repeats}")
    print(f"batched      {a.batched:>5} models  {t_b:7.1f} s  {rate_b:8.0f} models/min  "
          f"test accuracy {out['test_accuracy'].mean():.3f}")
    print(f"one at a time {a.single:>4} models  {t_s:7.1f} s  {rate_s:8.0f} models/min  test accuracy {acc.mean():.3f}")
    print(f"ratio: batched trains {rate_b / rate_s:.1f}x the models per minute")


if __name__ == "__main__":
    main()
