"""Benchmark: peak memory of `dmstore query` over a large result, streamed vs materialized.

    python bench/bench_query_stream.py                 # 60 M margins (m=20000 models x n=3000 targets)
    python bench/bench_query_stream.py --models 2000   # 6 M margins, quick

Each measurement runs the real CLI in a fresh process and reads its peak RSS (ru_maxrss):
  query "SELECT * FROM margins" --format jsonl -o FILE    (streamed; goal < 300 MB peak RSS)
  query "SELECT * FROM margins"                           (table preview: fetches 201 rows)
  baseline: the same relation materialized as one Arrow table (what `query` did before),
            in a fresh process, as a ratio.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from dmstore import Store
from timing import options

BASELINE = """
import sys, dmstore.engine as db
t = db.query(sys.argv[1], "SELECT * FROM margins")
print(t.num_rows)
"""


def measure(cmd):
    """Run `cmd` in a grandchild so ru_maxrss is its own (RUSAGE_CHILDREN keeps a maximum)."""
    probe = ("import resource, subprocess, sys, time; t=time.time(); p=subprocess.run(sys.argv[1:], "
             "stdout=subprocess.DEVNULL); print(time.time()-t, resource.getrusage(resource.RUSAGE_CHILDREN)"
             ".ru_maxrss / 1024, p.returncode)")
    out = subprocess.run([sys.executable, "-c", probe] + cmd, capture_output=True, text=True).stdout.split()
    if out[2] != "0":
        sys.exit(f"{cmd} failed")
    return float(out[0]), float(out[1])


def main():
    a = options(__doc__, models=20000, targets=3000, d=64, dir=(None, "where to build the store (default: a temp dir)"))
    work = a.dir or tempfile.mkdtemp(prefix="dmstore-bench-stream-")
    root = os.path.join(work, "s")
    n_cells = a.models * a.targets
    st = Store.create(root, train_size=a.d, test_size=a.targets)
    rng = np.random.default_rng(0)
    t0 = time.time()
    step = max(1, 4_000_000 // a.targets)
    for lo in range(0, a.models, step):
        k = min(step, a.models - lo)
        masks = np.zeros((k, a.d), bool)
        masks[:, : a.d // 2] = True
        Y = rng.normal(size=(k, a.targets)).astype(np.float32)
        st.append("big", 0.5, masks, Y, np.arange(a.d, a.d + a.targets), source="bench",
                  source_rows=np.arange(lo, lo + k))
    print(f"store: {a.models} models x {a.targets} targets = {n_cells / 1e6:.0f} M margins "
          f"(built in {time.time() - t0:.0f} s)")
    dm = [sys.executable, "-m", "dmstore"]
    out = os.path.join(work, "m.jsonl")
    w, rss = measure(dm + ["query", root, "SELECT * FROM margins", "--format", "jsonl", "-o", out])
    lines = sum(1 for _ in open(out))
    assert lines == n_cells, (lines, n_cells)
    size = os.path.getsize(out)
    os.unlink(out)
    print(f"query --format jsonl -o FILE : peak RSS {rss:7.0f} MB, {w:6.1f} s, {lines:,} lines, "
          f"{size / 1e9:.1f} GB  (goal < 300 MB)")
    out_csv = os.path.join(work, "m.csv")
    w2, rss2 = measure(dm + ["query", root, "SELECT * FROM margins", "--format", "csv", "-o", out_csv])
    os.unlink(out_csv)
    print(f"query --format csv   -o FILE : peak RSS {rss2:7.0f} MB, {w2:6.1f} s")
    w3, rss3 = measure(dm + ["query", root, "SELECT * FROM margins"])
    print(f"query (table preview)        : peak RSS {rss3:7.0f} MB, {w3:6.1f} s")
    wb, rssb = measure([sys.executable, "-c", BASELINE, root])
    print(f"baseline: whole result as one Arrow table: peak RSS {rssb:7.0f} MB, {wb:6.1f} s")
    print(f"ratios vs baseline: jsonl {rss / rssb:.2f}x, preview {rss3 / rssb:.2f}x of its peak memory")


if __name__ == "__main__":
    main()
