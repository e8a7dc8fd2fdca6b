"""Benchmark: server time per page of `dmstore serve` (p50 and p95 over many requests per route,
ids drawn at random), measured in-process through Starlette's test client (the ASGI app, its
queries and its templates; no network).

    python bench/bench_serve.py --store demo-out/store            # any store
    python bench/bench_serve.py --n 10000 --d 50000               # a synthetic store with a dense fit
    python bench/bench_serve.py --quick                           # n = 1,000, d = 5,000
    python bench/bench_serve.py --dir D --by-train                # the same store, fits copied by train example

With --by-train every fit gets its train-major copy first (`dmstore compact --by-train FIT`, each
timed in a fresh process with its peak RSS and the copy's bytes), so example pages read a few
row groups instead of scanning a fit.

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


COPY = """
import json, resource, sys, time
from dmstore import Store
t0 = time.time()
r = Store.open(sys.argv[1], "a").copy_by_train(int(sys.argv[2]), progress=False)
print(json.dumps({**r, "wall_s": time.time() - t0,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def copy_fits(root: str) -> None:
    """Each fit's train-major copy, in a fresh process: time, peak RSS, bytes beside the fit's weights."""
    import json

    from dmstore import Store
    from dmstore.engine.by_train import copied_fits
    st = Store.open(root)
    for fid in st.fit_runs().column("fit_id").to_pylist():
        p = subprocess.run([sys.executable, "-c", COPY, root, str(fid)], check=True, capture_output=True, text=True)
        r = json.loads(p.stdout.strip().splitlines()[-1])
        snap = Store.open(root).snapshot()
        unit = copied_fits(snap)[fid]
        copy_b = os.path.getsize(os.path.join(root, unit, "weights_by_train.parquet"))
        w_b = sum(os.path.getsize(os.path.join(root, u, "weights.parquet")) for u, e in snap.units.items()
                  if e.get("fit_id") == fid and "weights" in e["relations"])
        rows = f"{r['rows']:,} weights" if r["written"] else "copy already there"
        print(f"fit {fid} by train: {rows} in {r['wall_s']:.1f} s, peak RSS {r['rss_mib']:,.0f} MiB, "
              f"{copy_b / 2**20:,.0f} MiB ({copy_b / max(w_b, 1):.2f}x the fit's weights file)", flush=True)


def main():
    a = options(__doc__, quick=dict(n=1000, d=5000, fit=500, eval=500, requests=20), n=10000, d=50000, fit=1000,
                eval=2000, requests=(50, "requests per route"), store=(None, "an existing store to measure"),
                dir=(None, "where to build the synthetic store (default: a temp dir)"),
                by_train=(False, "write every fit's train-major copy first (timed) and measure with them"),
                routes=(None, "comma-separated route names to measure, e.g. '/example/{i}' (default: all)"))
    warnings.filterwarnings("ignore")
    from starlette.testclient import TestClient

    from dmstore.serve.app import create_app
    root = a.store or build(a.dir or tempfile.mkdtemp(prefix="dmstore-bench-serve-"), a)
    if a.by_train:
        copy_fits(root)
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
        "/sql (fits per fit)": lambda: "/sql?q=SELECT+fit_id,+count(*)+FROM+fits+GROUP+BY+fit_id",
    }
    if g is not None:
        routes["/targets?order=disagreement"] = lambda: f"/targets?fit={f}&order=disagreement&vs={g}"
    if snap.images.available:
        routes["/img/{i}.png"] = lambda: f"/img/{rng.integers(d)}.png"
    if a.routes:
        unknown = set(a.routes.split(",")) - set(routes)
        assert not unknown, f"unknown routes {sorted(unknown)}; routes are {list(routes)}"
        routes = {k: v for k, v in routes.items() if k in a.routes.split(",")}
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
