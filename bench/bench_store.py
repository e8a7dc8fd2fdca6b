"""Benchmark: ingestion, size on disk and matrix loading, against plain numpy on the same arrays.

    python bench/bench_store.py            # m=20000 d=5000 n=1000, float16 margins (release format)
    python bench/bench_store.py --quick

Prints ratios measured in one run (medians of --repeats):
  ingestion time / (np.load + np.save copy of the same .npy files)      goal <= 3x
  store bytes on disk / source .npy bytes                                goal <= 0.6x
  mask_matrix + margin_matrix time / np.load of the source files         goal <= 2x
and, to say what bounds those two times, the format's floor measured on the same data:
  writing the store's Parquet files with pyarrow (same tables, settings and 2 threads as
  ingest) and reading their mask and margin columns back with pyarrow.
"""
from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from dmstore.testing import block_masks as make_masks  # noqa: E402

from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import pyarrow.parquet as pq  # noqa: E402

from dmstore import Store  # noqa: E402
from dmstore.storage import paths as L  # noqa: E402
from dmstore.storage.parquet import write_parquet  # noqa: E402
from dmstore.ingest import ingest_release  # noqa: E402
from timing import options  # noqa: E402


def floors(root, dst):
    """(write s, read s): pyarrow alone writing the live batches' tables again with the store's
    settings, two files at a time as ingest does, and reading their mask and margin columns."""
    st = Store.open(root)
    units = [p for p in st.snapshot().paths(L.BATCHES) if (p / "models.parquet").exists()]
    tables = [(pq.read_table(u / "margins.parquet"), pq.read_table(u / "models.parquet")) for u in units]
    tables = [(a, b) for a, b in tables if b.num_rows]
    os.makedirs(dst)

    def write(k):
        write_parquet(tables[k][0], os.path.join(dst, f"margins{k}.parquet"), "margins")
        write_parquet(tables[k][1], os.path.join(dst, f"models{k}.parquet"), "models")
    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as ex:
        list(ex.map(write, range(len(tables))))
    w = time.perf_counter() - t0
    t0 = time.perf_counter()
    for k in range(len(tables)):
        pq.read_table(os.path.join(dst, f"margins{k}.parquet"), columns=["margin"])
        pq.read_table(os.path.join(dst, f"models{k}.parquet"), columns=["mask"])
    r = time.perf_counter() - t0
    shutil.rmtree(dst)
    return w, r


def du(path) -> int:
    total = 0
    for dp, _, fs in os.walk(path):
        if ".tmp" in dp:
            continue
        total += sum(os.path.getsize(os.path.join(dp, f)) for f in fs)
    return total


def main():
    a = options(__doc__, quick=dict(m=4000, d=1000, n=200), m=20000, d=5000, n=1000, repeats=3)
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

    copy_t, ingest_t, load_np_t, load_ours_t, floor_w, floor_r = [], [], [], [], [], []
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
        w, rd = floors(root, os.path.join(work, f"floor{r}"))
        floor_w.append(w)
        floor_r.append(rd)
        if r < a.repeats - 1:
            shutil.rmtree(root)
    med = statistics.median
    print(f"ingest: {med(ingest_t):.2f} s vs np.load+np.save copy {med(copy_t):.2f} s  ->  "
          f"{med(ingest_t) / med(copy_t):.2f}x (goal <= 3x)")
    print(f"  floor: pyarrow writing the same Parquet files {med(floor_w):.2f} s  ->  ingest is "
          f"{med(ingest_t) / med(floor_w):.2f}x the floor; the floor is {med(floor_w) / med(copy_t):.1f}x the copy")
    print(f"bytes on disk: {store_bytes / 1e6:.0f} MB vs {src_bytes / 1e6:.0f} MB of .npy  ->  "
          f"{store_bytes / src_bytes:.2f}x (goal <= 0.6x)")
    print(f"load: mask_matrix + margin_matrix {med(load_ours_t):.2f} s vs np.load {med(load_np_t):.2f} s  ->  "
          f"{med(load_ours_t) / med(load_np_t):.2f}x (goal <= 2x)")
    print(f"  floor: pyarrow reading their mask and margin columns {med(floor_r):.2f} s  ->  load is "
          f"{med(load_ours_t) / med(floor_r):.2f}x the floor; the floor is {med(floor_r) / med(load_np_t):.1f}x np.load")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
