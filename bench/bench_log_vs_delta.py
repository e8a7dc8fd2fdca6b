"""Benchmark: dmstore's hand-written commit log vs Delta Lake (`deltalake`, delta-rs) for our
two-relation batches: size on disk, ingest time, and whether a batch's models and margins
become visible together.

    pip install deltalake            # optional: not a dmstore dependency
    python bench/bench_log_vs_delta.py                    # 40 batches x 250 models x 1000 targets
    python bench/bench_log_vs_delta.py --batches 10 --quick

Both write the same Arrow tables (`ModelBatch.models_table` / `margins_table`) with zstd. Delta
keeps one table per relation, so an append is two commits; a reader polling both tables while
the batches land counts how often it sees models whose margins are not there yet (dmstore: one
commit per batch, polled through its snapshots). Medians of --repeats for the timings.
"""
from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from dmstore.testing import block_masks as make_masks  # noqa: E402

import dmstore  # noqa: E402
from dmstore import Store  # noqa: E402
from dmstore.store.batch import ModelBatch  # noqa: E402
from timing import options  # noqa: E402


def du(path) -> int:
    return sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(path) for f in fs
               if ".tmp" not in dp)


def batches(a, d, n):
    rng = np.random.default_rng(0)
    out = []
    for b in range(a.batches):
        X = make_masks(rng, a.models, d, 0.5)
        Y = rng.normal(size=(a.models, n)).astype(np.float16).astype(np.float32)
        out.append((X, Y))
    return out


def poll(read, stop, bad, total):
    while not stop.is_set():
        ok = read()
        if ok is None:
            continue
        total[0] += 1
        bad[0] += 0 if ok else 1


def run_dmstore(root, data, d, n, targets):
    st = Store.create(root, train_size=d, test_size=n)
    stop, bad, total = threading.Event(), [0], [0]

    def read():
        con = dmstore.connect(root)
        m, y = con.sql("SELECT (SELECT count(*) FROM models), (SELECT count(*) FROM margins)").fetchall()[0]
        return y == m * n
    th = threading.Thread(target=poll, args=(read, stop, bad, total))
    th.start()
    t0 = time.perf_counter()
    for k, (X, Y) in enumerate(data):
        st.append("b", 0.5, X, Y, targets, source="bench", source_rows=np.arange(k * len(X), (k + 1) * len(X)))
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    return wall, du(root), bad[0], total[0]


def run_delta(root, data, d, n, targets):
    from deltalake import DeltaTable, write_deltalake
    from deltalake.exceptions import TableNotFoundError
    os.makedirs(root)
    mp, yp = os.path.join(root, "models"), os.path.join(root, "margins")
    stop, bad, total = threading.Event(), [0], [0]
    started = threading.Event()

    def read():
        if not started.wait(0.01):
            return None   # nothing written yet: not a poll
        m = DeltaTable(mp).to_pyarrow_dataset().count_rows()   # what an analyst's reader does:
        try:                                                   # the latest version of each table
            y = DeltaTable(yp).to_pyarrow_dataset().count_rows()
        except TableNotFoundError:                             # models landed, margins not yet
            y = 0
        return y == m * n
    th = threading.Thread(target=poll, args=(read, stop, bad, total))
    th.start()
    t0 = time.perf_counter()
    offset = 0
    from deltalake import WriterProperties
    props = WriterProperties(compression="ZSTD")
    for X, Y in data:
        b = ModelBatch.from_arrays(experiment="b", alpha=0.5, masks=X, margins=Y, target_ids=targets, d=d,
                                   n_examples=d + n, where="bench")
        ids = np.arange(offset, offset + len(X))
        offset += len(X)
        write_deltalake(mp, b.models_table(ids, ids), mode="append", writer_properties=props)
        started.set()
        write_deltalake(yp, b.margins_table(ids), mode="append", writer_properties=props)
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    return wall, du(root), bad[0], total[0]


def main():
    a = options(__doc__, quick=dict(batches=10, repeats=1), batches=40, models=250, targets=1000, d=1000, repeats=3)
    try:
        import deltalake  # noqa: F401
    except ImportError:   # optional: the comparison needs it, dmstore does not
        print("skipped: `pip install deltalake` to compare against Delta Lake")
        return
    d, n = a.d, a.targets
    targets = np.arange(d, d + n)
    data = batches(a, d, n)
    cells = a.batches * a.models * n
    print(f"{a.batches} batches x {a.models} models x {n} targets = {cells / 1e6:.0f} M margins, d = {d}; "
          f"a reader polls while they land")
    res = {}
    for name, fn in (("dmstore log", run_dmstore), ("deltalake", run_delta)):
        walls, size, bad, total = [], 0, 0, 0
        for r in range(a.repeats):
            work = tempfile.mkdtemp(prefix="dmstore-bench-delta-")
            try:
                w, size, b_, t_ = fn(os.path.join(work, "s"), data, d, n, targets)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            walls.append(w)
            bad += b_
            total += t_
        res[name] = (statistics.median(walls), size, bad, total)
        print(f"{name:12s} ingest {res[name][0]:6.2f} s (median of {a.repeats}), {size / cells:5.2f} B/margin "
              f"on disk, reader saw models without their margins in {bad} of {total} polls")
    (wd, sd, *_), (wl, sl, *_) = res["dmstore log"], res["deltalake"]
    print(f"ratios dmstore/deltalake: ingest time {wd / wl:.2f}x, bytes {sd / sl:.2f}x")


if __name__ == "__main__":
    main()
