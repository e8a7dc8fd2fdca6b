"""Benchmark: server time per page of `dmstore serve` (p50 and p95 over many requests per route,
ids drawn at random), measured in-process through Starlette's test client (the ASGI app, its
queries and its templates; no network).

    python bench/bench_serve.py --store demo-out/store            # any store
    python bench/bench_serve.py --n 10000 --d 50000               # a synthetic store with a dense fit
    python bench/bench_serve.py --quick                           # n = 1,000, d = 5,000

Without --store it builds the store of bench_attribution.py (n test targets, d train examples,
`fit` + `eval` models, a dense float16 score matrix ingested as a fit) plus a second method (the
same scores with fresh noise, ingested under another name), so every route (the disagreement
order included) has two dense methods to read.
Targets: ≤ 300 ms per page on the demo store, ≤ 1 s on 10,000 targets × 50,000 train examples.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
from timing import options

sys.path.insert(0, os.path.dirname(__file__))


def build(work: str, a) -> str:
    from bench_attribution import BUILD, OURS, child
    root, scores = os.path.join(work, "s"), os.path.join(work, "scores.npy")
    if not os.path.exists(root):
        t0 = time.time()
        subprocess.run([sys.executable, "-c", BUILD.format(d=a.d, n=a.n, fit=a.fit, eval=a.eval, root=root,
                                                           scores=scores)], check=True)
        child(OURS.format(root=root, scores=scores))
        s1 = np.load(scores, mmap_mode="r")
        other = os.path.join(work, "scores2.npy")
        s2 = np.lib.format.open_memmap(other, mode="w+", dtype=np.float16, shape=s1.shape)
        rng = np.random.default_rng(1)
        for lo in range(0, s1.shape[0], 500):
            blk = np.asarray(s1[lo:lo + 500], np.float32)
            s2[lo:lo + 500] = (blk + rng.normal(scale=0.3, size=blk.shape)).astype(np.float16)
        s2.flush()
        del s1, s2
        from dmstore import Store
        from dmstore.ingest import ingest_scores
        ingest_scores(Store.open(root, "a"), other, "synthetic_b", "syn", 0.5, progress=False)
        print(f"built {root} in {time.time() - t0:.0f} s", flush=True)
    return root


def main():
    a = options(__doc__, quick=dict(n=1000, d=5000, fit=500, eval=500, requests=20), n=10000, d=50000, fit=1000,
                eval=2000, requests=(50, "requests per route"), store=(None, "an existing store to measure"),
                dir=(None, "where to build the synthetic store (default: a temp dir)"))
    warnings.filterwarnings("ignore")
    from starlette.testclient import TestClient

    from dmstore.serve.app import create_app
    root = a.store or build(a.dir or tempfile.mkdtemp(prefix="dmstore-bench-serve-"), a)
    app = create_app(root)
    snap = app.state.snapshot
    fits = snap.table("serve_fits")   # (the warm-up thread computes it once)
    f = fits[0]["fit_id"]
    g = fits[1]["fit_id"] if len(fits) > 1 else None
    with snap.lock:   # the snapshot's one connection, shared with its warm-up thread
        targets = [r[0] for r in snap.con.execute(f"SELECT DISTINCT target_id FROM fits WHERE fit_id = {f}").fetchall()]
        d = int(snap.con.execute("SELECT count(*) FROM examples WHERE split = 'train'").fetchall()[0][0])
    rng = np.random.default_rng(0)
    routes = {
        "/": lambda: "/",
        "/target/{t}": lambda: f"/target/{rng.choice(targets)}",
        "/api/target/{t}": lambda: f"/api/target/{rng.choice(targets)}",
        "/example/{i}": lambda: f"/example/{rng.integers(d)}",
        "/leakage?fit": lambda: f"/leakage?fit={f}&page={rng.integers(3)}",
        "/targets?order=lds": lambda: f"/targets?fit={f}&order=lds&page={rng.integers(3)}",
        "/sql (estimator_comparison)": lambda: "/sql?q=SELECT+*+FROM+estimator_comparison",
    }
    if g is not None:
        routes["/targets?order=disagreement"] = lambda: f"/targets?fit={f}&order=disagreement&vs={g}"
    if snap.images.available:
        routes["/img/{i}.png"] = lambda: f"/img/{rng.integers(d)}.png"
    print(f"store {root}: {len(targets):,} targets of fit {f} ({fits[0]['estimator']}), {d:,} train examples, "
          f"{len(fits)} fits; {a.requests} requests per route; {os.cpu_count()} cores", flush=True)
    with TestClient(app) as c:
        for name, url in routes.items():
            t0 = time.perf_counter()
            c.get(url())   # cold: the first request computes the snapshot's per-fit tables (kept after)
            cold = time.perf_counter() - t0
            ts = []
            for _ in range(a.requests):
                u = url()
                t0 = time.perf_counter()
                r = c.get(u)
                ts.append(time.perf_counter() - t0)
                assert r.status_code == 200, (u, r.status_code, r.text[:300])
            ts.sort()
            p95 = ts[min(len(ts) - 1, int(round(0.95 * (len(ts) - 1))))]
            print(f"  {name:<32} p50 {1000 * statistics.median(ts):8.1f} ms   p95 {1000 * p95:8.1f} ms   "
                  f"(first request {1000 * cold:8.1f} ms)", flush=True)


if __name__ == "__main__":
    main()
