"""Benchmark on a second real data set: MNIST-5k (`--recipe mnist5k`), end to end on a CPU.

    python bench/bench_mnist.py                     # 10,000 fit + 1,000 eval models (500 masks x 2 seeds)
    python bench/bench_mnist.py --quick             # 1,000 + 200, to check the pipeline

Trains the models with `dmstore train --workers W`, fits LASSO datamodels and difference of
means for the 500 test digits, computes the attribution baselines (`dmstore attribute`: TRAK
with 10 full-data models and a 512-dim projection, influence functions, TracIn-CP, Grad-Dot,
representation similarity), and prints the demo's method table for this data set, each step's
wall time beside it. The store is kept (`--store`); a rerun reuses whatever is stored.
"""
from __future__ import annotations

import time
import warnings

from timing import options

from dmstore import Store
from dmstore.attribution import attribute
from dmstore.engine.query import run
from dmstore.fit import fit
from dmstore.train import train


def main():
    a = options(__doc__, quick={"models": 1000, "eval_masks": 100},
                models=(10_000, "fit models"), eval_masks=(500, "held-out masks (2 seeds each)"),
                workers=(2, "training processes"), store=("/tmp/dmstore-bench-mnist", "store directory"),
                lambdas=(15, "lasso path length"), baselines=("trak,if,tracin,graddot,repsim", "methods"))
    t = {}
    t0 = time.time()
    r = train(a.store, "mnist5k", 0.5, a.models, batch=500, workers=a.workers)
    t["train fit models"] = time.time() - t0
    print(r.summary(), flush=True)
    t0 = time.time()
    r = train(a.store, "mnist5k", 0.5, 2 * a.eval_masks, batch=max(2, 2 * -(-a.eval_masks // a.workers)),
              role="eval", repeats=2, workers=a.workers, seed=1)
    t["train eval models"] = time.time() - t0
    print(r.summary(), flush=True)
    st = Store.open(a.store, "a")
    ids, secs = [], {}
    for est in ("lasso", "diff_means"):
        t0 = time.time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = fit(st, "mnist5k", 0.5, estimator=est, targets="test", n_lambdas=a.lambdas, lambda_min_ratio=1e-2,
                    progress=False, reuse=True)
        t[f"fit {est}"] = time.time() - t0
        ids.append(r.fit_id)
        secs[est] = r.wall_time_s
        print(r.summary(), flush=True)
    for method in [m for m in a.baselines.split(",") if m]:
        t0 = time.time()
        r = attribute(st, method, experiment="mnist5k", alpha=0.5, progress=False)
        t[f"attribute {method}"] = time.time() - t0
        ids.append(r.fit_id)
        secs[method] = r.wall_time_s
        print(r.summary(), flush=True)
    con = st.connect()
    rows = run(con, "report_comparison", e="mnist5k", a=0.5, all=False, f=ids[0],
               est="lasso").to_arrow_table().to_pylist()
    print(f"\nMNIST-5k: d = {st.d} train, {st.n_examples - st.d} test digits, "
          f"{a.models} fit models, {2 * a.eval_masks} eval models")
    print(f"{'method':<12} {'models used':>11} {'LDS':>6} {'95 % CI':>15} {'targets':>9} {'common':>7} "
          f"{'pooled r':>8} {'AUC':>6} {'wall s':>7}")
    for r in rows:
        print(f"{r['estimator']:<12} {r['models_used']:>11} {r['lds']:>6.3f} "
              f"[{r['lds_ci_lo']:.3f}, {r['lds_ci_hi']:.3f}] {r['n_lds']:>4}/{r['n_targets']:<4} "
              f"{r['lds_common']:>7.3f} {r['pooled_pearson']:>8.3f} {r['auc']:>6.3f} "
              f"{secs.get(r['estimator'], float('nan')):>7.1f}")
    print("wall s: the fit's or attribute run's own time as stored (reruns reuse them)")
    print("this run: " + ", ".join(f"{k} {v:.0f} s" for k, v in t.items()))


if __name__ == "__main__":
    main()
