"""Benchmark: real datamodels on digits at scale (the real-data goals).

    python bench/bench_digits.py                 # 20,000 models (about 10 minutes on 2 cores)
    python bench/bench_digits.py --models 5000   # quicker

Prints: training throughput (goal >= 1,500 MLP models/min on 2 cores); held-out LDS (goal >= 0.70)
and pooled Pearson (goal >= 0.97) of the LASSO datamodels; the share of each test digit's top-10
positive neighbours sharing its label (goal >= 80 %); counterfactual predicted-vs-actual Pearson
over top/bottom/random removals (goal >= 0.8); the estimator ordering of Table K.1
(diff-means on correctness < diff-means on margins < LASSO).
"""
from __future__ import annotations

import os
import tempfile
import time

from timing import options  # noqa: E402
from dmstore import Store
from dmstore.analysis import counterfactual
from dmstore.fit import fit
from dmstore.train import train


def main():
    a = options(__doc__, models=20000, eval_masks=500, workers=2, cf_targets=10, out=(None, "keep the store here"))
    root = a.out or os.path.join(tempfile.mkdtemp(), "digits")
    t0 = time.time()
    r = train(root, "digits", 0.5, a.models, batch=500, workers=a.workers, progress=False)
    print(f"train: {r.summary()}  (goal >= 1,500 models/min)", flush=True)
    train(root, "digits", 0.5, 2 * a.eval_masks, batch=500, role="eval", repeats=2, workers=a.workers,
          progress=False)
    st = Store.open(root, "a")
    ids = {r["estimator"]: r["fit_id"] for r in st.fit_runs().to_pylist()}   # a rerun reuses fits
    for est in ("lasso", "diff_means", "diff_means_correct"):
        if est not in ids:
            f = fit(st, "digits", 0.5, estimator=est, targets="test", n_lambdas=20, progress=False)
            ids[est] = f.fit_id
            print(f"fit: {f.summary()}", flush=True)
    con = st.connect()
    rows = con.sql("SELECT estimator, lds, pooled_pearson, auc, lds_mask_avg, pearson_mask_avg, n_eval_models "
                   "FROM estimator_comparison WHERE list_contains($ids, fit_id) ORDER BY fit_id",
                   params={"ids": list(ids.values())}).fetchall()
    lds = {}
    for est, l, pp, auc, lm, pm, n in rows:
        lds[est] = l
        print(f"held-out ({n} eval models): {est:<19} LDS {l:.3f}  pooled Pearson {pp:.3f}  AUC {auc:.3f}  "
              f"LDS vs per-mask means {lm:.3f}")
    print("goal LDS >= 0.70 and pooled Pearson >= 0.97 for lasso")
    agree, per_target, _ = con.sql("SELECT * FROM neighbor_label_agreement($f, 10)",
                                   params={"f": ids["lasso"]}).fetchall()[0]
    print(f"top-10 positive neighbours sharing the label: {100 * agree:.1f} % of pairs, "
          f"{100 * per_target:.1f} % averaged per test digit (goal >= 80 %)")
    cf = counterfactual(st, ids["lasso"], targets=a.cf_targets, ks=(10, 20, 40, 80, 160), trials=5)
    print(f"counterfactuals: {cf['n']} removal sets, predicted vs actual Pearson {cf['pearson']:.3f}, "
          f"Spearman {cf['spearman']:.3f} (goal Pearson >= 0.8)")
    order = lds["diff_means_correct"] < lds["diff_means"] < lds["lasso"]
    print(f"Table K.1 ordering diff_means_correct < diff_means < lasso by LDS: {order}")
    print(f"total {time.time() - t0:.0f} s; store at {root}")


if __name__ == "__main__":
    main()
