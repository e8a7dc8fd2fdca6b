"""Benchmark: one data-space product Xᵀ(X W − shift) on packed 0/1 mask rows (what each working-set
round and eq. 9 pay on all d), float64 W as the certificates take it, the int8 rows with exact
integer products (`gram.int8_matmul`) against float chunks unpacked per product (the path where the
int8 kernel is missing or slow), on the same rows; medians, results compared.

    python bench/bench_rows.py                          # m = 5,400, d = 60,000, 69 columns (Fashion's block)
    python bench/bench_rows.py --m 18000 --d 50000      # bench_scale's shape
"""
from __future__ import annotations

import time

import numpy as np
import torch

from timing import options, timed

from dmstore.fit.gram import probe_cpu
from dmstore.fit.operators import PackedRows


def main():
    a = options(__doc__, quick=dict(m=2000, d=20000, n=32), m=5400, d=60000, n=69, density=0.05, repeats=3, threads=0)
    if a.threads:
        torch.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    packed = np.packbits(rng.random((a.m, a.d)) < 0.5, axis=1)
    W = torch.as_tensor(rng.standard_normal((a.d, a.n)) * (rng.random((a.d, a.n)) < a.density))
    shift = W.sum(0) / 2
    f = lambda lo, hi, R: R - shift       # noqa: E731  (test targets' form)
    print(f"m = {a.m:,}, d = {a.d:,}, {a.n} float64 columns, {torch.get_num_threads()} threads; "
          f"CPU probe {probe_cpu()}", flush=True)
    t0 = time.perf_counter()
    rows_i8 = PackedRows(packed, a.d, "cpu", torch.float32, int8=True)
    print(f"int8 rows unpacked once: {time.perf_counter() - t0:.2f} s, {rows_i8._t8.numel() / 2**20:.0f} MiB")
    rows_f = PackedRows(packed, a.d, "cpu", torch.float32, int8=False)
    t_f, ref = timed(lambda: rows_f.normal_matvec(W, f), a.repeats)
    t_i, got = timed(lambda: rows_i8.normal_matvec(W, f), a.repeats)
    err = float(((got - ref).abs().max() / ref.abs().max()))
    print(f"float chunks {t_f:.2f} s   int8 {t_i:.2f} s   ratio {t_f / t_i:.2f}x   max |diff| / max |ref| {err:.1e}")


if __name__ == "__main__":
    main()
