"""Benchmark: target-major margins (`compact --layout target`) against model-major, same store,
same run: bytes per margin, one-target and one-model SQL queries, margin_matrix for a block of
targets, and a full scan.

    python bench/bench_layout.py                          # 2,000 models x 10,000 examples = 20 M margins
    python bench/bench_layout.py --models 1000 --examples 60000   # bytes per margin at 60k targets

Margins are float16-origin (as the paper's release), stored as float32. Times are medians of
--repeats, query time only (one DuckDB connection per layout, opened before timing).
Goals (issue 10): one target <= 25 % of a full scan; <= 2.3 bytes per margin at 60,000 targets.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from dmstore.testing import block_masks as make_masks  # noqa: E402
from timing import options, timed  # noqa: E402

from dmstore import Store  # noqa: E402
from dmstore.store.compact import compact  # noqa: E402


def _t(fn, repeats):
    return timed(fn, repeats)[0]


def live_bytes(st, rel="margins"):
    return sum(os.path.getsize(f) for f in st.snapshot().files(rel))


def main():
    a = options(__doc__, models=2000, examples=(10000, "targets with margins (train + test examples)"),
                d=(1000, "train examples (mask bits)"), block=(1000, "targets in the margin_matrix block"), repeats=5)
    tmp = tempfile.mkdtemp(prefix="bench_layout_")
    rng = np.random.default_rng(0)
    m, n, d = a.models, a.examples, a.d
    st = Store.create(os.path.join(tmp, "model"), train_size=d, test_size=n - d)
    step = max(1, 4_000_000 // n)
    t0 = time.perf_counter()
    for lo in range(0, m, step):
        hi = min(m, lo + step)
        X = make_masks(rng, hi - lo, d)
        Y = (rng.normal(size=(hi - lo, n)) * 2 + 1).astype(np.float16)
        Y[:, :d] += X * np.float16(0.5)
        st.append("b", 0.5, X, Y.astype(np.float32), np.arange(n), seeds=np.arange(lo, hi))
    t_ingest = time.perf_counter() - t0
    compact(st)                       # model-major, merged: the fair baseline
    tgt_root = os.path.join(tmp, "target")
    shutil.copytree(st.root, tgt_root)
    t0 = time.perf_counter()
    tg = Store.open(tgt_root, "a")
    compact(tg, layout="target")
    t_compact = time.perf_counter() - t0
    st, tg = Store.open(st.root), Store.open(tgt_root)
    M = m * n
    print(f"{m:,} models x {n:,} examples = {M / 1e6:.0f} M margins (float16-origin); ingest {t_ingest:.1f} s, "
          f"compact --layout target {t_compact:.1f} s")
    for name, s in (("model-major", st), ("target-major", tg)):
        print(f"  {name:13s} margins {live_bytes(s) / M:.2f} B/margin, {len(s.snapshot().files('margins'))} file(s)")
    raw16 = M * 2
    print(f"  float16 .npy of the margins: 2.00 B/margin; target-major is {live_bytes(tg) / raw16:.2f}x of it")
    cons = {"model-major": st.connect(), "target-major": tg.connect()}
    target, model = n - 7, int(st.model_ids("b", 0.5)[m // 2])
    block = np.arange(n - a.block, n)
    rows = {}
    for name, con in cons.items():
        s = st if name == "model-major" else tg
        rows[name] = dict(
            scan=_t(lambda: con.sql("SELECT avg(margin) FROM margins").fetchall(), a.repeats),
            target=_t(lambda: con.sql(f"SELECT model_id, margin FROM margins WHERE example_id = {target}").fetchall(),
                         a.repeats),
            model=_t(lambda: con.sql(f"SELECT example_id, margin FROM margins WHERE model_id = {model}").fetchall(),
                        a.repeats),
            block=_t(lambda: s.margin_matrix("b", 0.5, targets=block), a.repeats),
            full=_t(lambda: s.margin_matrix("b", 0.5), max(1, a.repeats // 2)),
        )
    print(f"\n{'query (median s)':44s} {'model-major':>12s} {'target-major':>13s}")
    labels = dict(scan="full scan: SELECT avg(margin) FROM margins", target="one target: WHERE example_id = t",
                  model="one model: WHERE model_id = i", block=f"margin_matrix(targets=<{a.block} targets>)",
                  full="margin_matrix() (all targets)")
    for k, label in labels.items():
        print(f"{label:44s} {rows['model-major'][k]:12.3f} {rows['target-major'][k]:13.3f}")
    r = rows["target-major"]
    print(f"\none target on target-major = {100 * r['target'] / rows['model-major']['scan']:.1f} % of a full scan "
          f"(goal <= 25 %); = {100 * r['target'] / rows['model-major']['target']:.1f} % of one target on model-major; "
          f"a {a.block}-target block = {100 * r['block'] / r['full']:.1f} % of the whole matrix load")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
