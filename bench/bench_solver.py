"""Benchmark: the LASSO solvers at the paper's shape, where models are not ≫ features — FISTA
with anchored products then batched Newton–CG steps ('activeset', the default for test targets
where fit models outnumber train examples), working sets ('workingset', the default where they do
not) and batched FISTA alone ('fista'), in one run on the same store; the last solver named is the
baseline of the ratios.

    python bench/bench_solver.py --d 12000 --m 16000 --n 40 --solvers activeset    # issue 26's first case
    python bench/bench_solver.py --d 20000 --m 5000 --n 40 --solvers workingset    # m < d
    python bench/bench_solver.py --d 20000 --m 5000 --n 40 --solvers workingset --data-space --patience 3
    python bench/bench_solver.py --d 12000 --m 16000 --n 40 --solvers activeset,fista --patience 3
    python bench/bench_solver.py --quick

Prints per solver: wall time of `fit` (read + Gram + 10-λ path + selection + refit + write),
inner iterations (sum and max per (target, λ)), operator flops, (target, λ) pairs at the
iteration cap, the worst relative duality gap (the full problem's certificate), and the held-out
LDS on eval models; then each solver's ratio to the baseline and the largest difference of their
eval predictions. (At d = 12,000 on a 2-core AMX Xeon the FISTA of before issue 26 took 351 s
on 2026-12-07 and 414.5 s on 2026-12-08, 144 (target, λ) at the cap; 'activeset' 59.3–59.6 s with 0
on 2026-12-08. Working sets took 529 s at d = 20,000, m = 5,000 with --patience 3 and more than
15 minutes over the whole path: name fewer solvers there.)
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from timing import options  # noqa: E402

import dmstore  # noqa: E402
from dmstore import Store  # noqa: E402
from dmstore.fit import newton_cg, solvers  # noqa: E402
from dmstore.testing import datamodel_data  # noqa: E402


def main():
    a = options(__doc__, quick=dict(d=2000, m=2500, n=20), d=12000, m=16000, n=40, lambdas=10, eval=400,
                tol=1e-6, max_iter=1000, lambda_min=(1e-3, "the path's last λ over λmax"),
                solvers=("activeset,workingset,fista", "comma-separated; the last is the baseline"),
                patience=(0, "path_patience of every solver but the baseline, the last named when several "
                              "are (0: the whole path)"),
                data_space=(False, "working sets in data space for every size (no d x d Gram: "
                                   "pipeline.GRAM_BYTES_MAX = 0), as at d > 32,768"))
    if a.data_space:
        from dmstore.fit import pipeline
        pipeline.GRAM_BYTES_MAX = 0
    n_val = a.m // 10
    print(f"data: d={a.d} train examples, m={a.m} models ({a.m - n_val} fit + {n_val} val) + {a.eval} eval, "
          f"{a.n} test targets, alpha=0.5; {a.lambdas}-lambda path to {a.lambda_min:g}·λmax, tol {a.tol:g}, max_iter "
          f"{a.max_iter}; torch threads={torch.get_num_threads()}")
    X, Y, _ = datamodel_data(a.m + a.eval, a.d, a.n)
    tmp = tempfile.mkdtemp()
    st = Store.create(os.path.join(tmp, "s"), train_size=a.d, test_size=a.n)
    roles = np.array(["fit"] * (a.m - n_val) + ["val"] * n_val + ["eval"] * a.eval, dtype=object)
    st.append("bench", 0.5, X, Y, np.arange(a.d, a.d + a.n), roles=roles)
    del X, Y
    out = {}
    names = a.solvers.split(",")
    for solver in names:
        patience = (a.patience or None) if len(names) == 1 or solver != names[-1] else None
        solvers.FLOPS["matvec"] = 0
        newton_cg.STATS.update(cg=0, steps=0)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = dmstore.Store.open(st.root, "a").fit("bench", 0.5, n_lambdas=a.lambdas, lambda_min_ratio=a.lambda_min,
                                                      tol=a.tol, max_iter=a.max_iter, solver=solver, progress=False,
                                                      path_patience=patience)
        wall = time.perf_counter() - t0
        con = dmstore.connect(st.root)
        f = con.sql(f"SELECT n_iter, rel_gap, converged FROM fits WHERE fit_id = {r.fit_id}").fetchnumpy()
        lds = con.sql(f"SELECT lds FROM estimator_comparison WHERE fit_id = {r.fit_id}").fetchall()[0][0]
        out[solver] = (wall, r.fit_id, lds)
        label = solver + (f"+patience {patience}" if patience else "")
        print(f"{label:21s} {wall:8.1f} s   iterations sum {int(f['n_iter'].sum()):7d} max {int(f['n_iter'].max()):5d}   "
              f"operator {solvers.FLOPS['matvec'] / 1e12:7.2f} TFLOP   at cap {int((~f['converged']).sum()):3d}   "
              f"worst rel gap {float(np.nanmax(f['rel_gap'])):.2e}   held-out LDS {lds:.4f}   Newton-CG steps "
              f"{newton_cg.STATS['steps']} (CG iterations {newton_cg.STATS['cg']})")
    base = names[-1]
    con = dmstore.connect(st.root)
    for solver in names[:-1]:
        d_pred = con.sql(f"""SELECT max(abs(a.predicted - b.predicted)) FROM eval_predictions a JOIN eval_predictions b
            USING (model_id, target_id) WHERE a.fit_id = {out[solver][1]} AND b.fit_id = {out[base][1]}""").fetchall()[0][0]
        print(f"ratio {base} / {solver}: {out[base][0] / out[solver][0]:.1f}x wall; held-out LDS "
              f"{out[solver][2]:.4f} vs {out[base][2]:.4f}; largest difference of eval predictions {d_pred:.2e} "
              f"(margin units)")


if __name__ == "__main__":
    main()
