"""Benchmark: the exact Gram XᵀX of 0/1 masks by each kernel of `dmstore.fit.gram` — int8 products
with int32 accumulation (`torch._int_mm`) against float32 GEMM — on this machine's device, the
counts checked identical. The fit picks the kernel per device (`gram.kernel_for`); this is the
measurement behind that rule.

    python bench/bench_gram.py                    # d = 4,096, chunks of 4,096 rows, 3 repeats
    python bench/bench_gram.py --d 12000 --rows 2048 --device cuda

Prints per kernel the median seconds per chunk product and the rate in G op/s (2·rows·d² per
product), then the ratio int8 / float32.
"""
from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from timing import options, timed  # noqa: E402

from dmstore.fit import gram  # noqa: E402


def main():
    a = options(__doc__, quick=dict(d=1024, rows=1024), d=4096, rows=4096, repeats=3, device="cpu")
    dev = torch.device(a.device)
    g = torch.Generator().manual_seed(0)
    X = (torch.rand(a.rows, a.d, generator=g) < 0.5).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    ops = 2 * a.rows * a.d * a.d
    print(f"device {dev}, torch threads {torch.get_num_threads()}, chunk {a.rows} rows x d={a.d}, "
          f"median of {a.repeats}; the fit's rule picks '{gram.kernel_for(dev, torch.float32)}' here"
          + (f" (CPU probe: {gram.probe_cpu()})" if dev.type == "cpu" else ""))
    out = {}
    for kernel in ("float32", "int8"):
        def one():
            acc = gram.Accumulator(a.d, dev, torch.float32, kernel=kernel)
            acc.add(X)
            sync()
            return acc.xx
        one()                                    # warm-up
        sec, xx = timed(one, a.repeats)
        out[kernel] = (sec, xx)
        print(f"{kernel:8s} {sec:8.3f} s per product   {ops / sec / 1e9:8.1f} G op/s")
    same = torch.equal(out["float32"][1], out["int8"][1])
    print(f"ratio int8 / float32 speed: {out['float32'][0] / out['int8'][0]:.2f}x   identical counts: {same}")


if __name__ == "__main__":
    main()
