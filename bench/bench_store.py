"""Benchmark: ingestion, size on disk and matrix loading, against plain numpy on the same arrays.

    python bench/bench_store.py            # m=20000 d=5000 n=1000, float16 margins (release format)
    python bench/bench_store.py --quick

Prints ratios measured in one run (medians of --repeats):
  ingestion time / (np.load + np.save copy of the same .npy files)      goal <= 3x
  store bytes on disk / source .npy bytes                                goal <= 0.6x
  mask_matrix + margin_matrix time / np.load of the source files         goal <= 2x
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from synth import masks as make_masks  # noqa: E402

from dmstore import Store  # noqa: E402
from dmstore.ingest import ingest_release  # noqa: E402


def du(path) -> int:
    total = 0
    for dp, _, fs in os.walk(path):
        if ".tmp" in dp:
            continue
        total += sum(os.path.getsize(os.path.join(dp, f)) for f in fs)
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--m", type=int, default=20000)
    ap.add_argument("--d", type=int, default=5000)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.m, a.d, a.n = 4000, 1000, 200
    rng = np.random.default_rng(0)
    work = tempfile.mkdtemp(prefix="dmbench-")
    rel = os.path.join(work, "release")
    os.makedirs(rel)
    X = make_masks(rng, a.m, a.d, 0.5)
    theta = rng.normal(scale=0.05, size=(a.d, a.n)).astype(np.float32) * (rng.random((a.d, a.n)) < 0.05)
    test = (X.astype(np.float32) @ theta + rng.normal(size=(a.m, a.n)).astype(np.float32) + 2).astype(np.float16)
    np.save(os.path.join(rel, "train_masks_50pct.npy"), X)
    np.save(os.path.join(rel, "test_margins_50pct.npy"), test)
    del X, test
    src_files = [os.path.join(rel, f) for f in sorted(os.listdir(rel))]
    src_bytes = sum(os.path.getsize(f) for f in src_files)
    print(f"release: m={a.m} d={a.d} n={a.n} float16 margins, {src_bytes / 1e6:.0f} MB of .npy")

    copy_t, ingest_t, load_np_t, load_ours_t = [], [], [], []
    for r in range(a.repeats):
        dst = os.path.join(work, f"copy{r}")
        os.makedirs(dst)
        t0 = time.perf_counter()
        for f in src_files:
            np.save(os.path.join(dst, os.path.basename(f)), np.load(f))
        copy_t.append(time.perf_counter() - t0)
        shutil.rmtree(dst)

        root = os.path.join(work, f"store{r}")
        st = Store.create(root, train_size=a.d, test_size=a.n)
        t0 = time.perf_counter()
        ingest_release(st, rel, 0.5, "bench")
        ingest_t.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        M0 = np.load(os.path.join(rel, "train_masks_50pct.npy"))
        Y0 = np.load(os.path.join(rel, "test_margins_50pct.npy"))
        load_np_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        M1 = st.mask_matrix("bench", 0.5)
        Y1 = st.margin_matrix("bench", 0.5)
        load_ours_t.append(time.perf_counter() - t0)
        assert np.array_equal(M0, M1) and np.array_equal(Y0.astype(np.float32), Y1)
        del M0, Y0, M1, Y1
        store_bytes = du(root)
        if r < a.repeats - 1:
            shutil.rmtree(root)
    med = statistics.median
    print(f"ingest: {med(ingest_t):.2f} s vs np.load+np.save copy {med(copy_t):.2f} s  ->  "
          f"{med(ingest_t) / med(copy_t):.2f}x (goal <= 3x)")
    print(f"bytes on disk: {store_bytes / 1e6:.0f} MB vs {src_bytes / 1e6:.0f} MB of .npy  ->  "
          f"{store_bytes / src_bytes:.2f}x (goal <= 0.6x)")
    print(f"load: mask_matrix + margin_matrix {med(load_ours_t):.2f} s vs np.load {med(load_np_t):.2f} s  ->  "
          f"{med(load_ours_t) / med(load_np_t):.2f}x (goal <= 2x)")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
