"""`dmstore demo`: real datamodels end to end on a CPU, no download.

Trains small MLPs on 50 % subsets of scikit-learn's digits, fits LASSO datamodels for the 450
test digits (and the difference-of-means estimators for comparison), checks them on held-out
models, retrains a few counterfactuals, and writes an HTML report.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path

from .analysis.counterfactual import counterfactual
from .analysis.report import build_report
from .engine.query import run
from .fit import fit
from .store import Store
from .train import train


def _stored_counterfactuals(con, fit_id, n_targets, ks, trials) -> dict | None:
    """The agreement of counterfactuals an earlier demo stored for this fit with these settings
    (a rerun reuses them instead of retraining), or None."""
    from scipy.stats import pearsonr, spearmanr
    rows = run(con, "demo_stored_counterfactuals", f=fit_id, t=trials, ks=list(ks), n=n_targets).fetchall()
    if len(rows) < 3:
        return None
    p, a = zip(*rows)
    return {"n": len(rows), "pearson": float(pearsonr(p, a).statistic), "spearman": float(spearmanr(p, a).statistic),
            "reused": True}


def demo(out="demo-out", models: int = 4000, eval_masks: int = 200, workers: int = 2,
         cf_targets: int = 6, echo=print) -> dict:
    t0 = time.time()
    out = Path(out)
    root = out / "store"
    echo(f"[1/5] training {models} digits MLPs on alpha = 0.5 subsets (resumes if {root} exists)")
    echo("      " + train(root, "digits", 0.5, models, batch=500, workers=workers).summary())
    echo(f"      and {eval_masks} held-out masks x 2 seeds as eval models")
    echo("      " + train(root, "digits", 0.5, 2 * eval_masks, batch=400, role="eval", repeats=2,
                          workers=workers).summary())
    store = Store.open(root, "a")
    echo("[2/5] fitting datamodels for the 450 test digits")
    fits = {}
    for est in ("lasso", "diff_means", "diff_means_correct"):
        with warnings.catch_warnings():  # the summary line reports targets that hit the cap
            warnings.simplefilter("ignore")
            r = fit(store, "digits", 0.5, estimator=est, targets="test", n_lambdas=15, lambda_min_ratio=1e-2,
                    progress=False, reuse=True)
        fits[est] = r.fit_id
        echo(f"      {r.summary()}")
    con = store.connect()
    comp = run(con, "demo_comparison", ids=list(fits.values())).fetchall()
    echo("[3/5] held-out evaluation (eval models never used in fitting)")
    for est, n, lds, pear, auc in comp:
        echo(f"      {est:<19} LDS {lds:.3f}   pooled Pearson {pear:.3f}   AUC {auc:.3f}   ({n} models)")
    lasso = fits["lasso"]
    agree = run(con, "label_agreement", f=lasso, k=10).fetchall()[0][0]
    echo(f"      top-10 positive neighbours sharing the test digit's label: {100 * agree:.1f} %")
    for t, lab, ids, labs in run(con, "demo_top5", f=lasso).fetchall():
        echo(f"      test {t} (a {lab}): top-5 train examples {ids} with labels {labs}")
    echo(f"[4/5] counterfactual check: retraining without top/bottom/random sets for {cf_targets} test digits")
    cf = _stored_counterfactuals(con, lasso, cf_targets, (10, 20, 40, 80), 5) or \
        counterfactual(store, lasso, targets=cf_targets, ks=(10, 20, 40, 80), trials=5)
    echo(f"      predicted vs actual margin drop over {cf['n']} removal sets: Pearson {cf['pearson']:.3f}, "
         f"Spearman {cf['spearman']:.3f}" + (" (stored by an earlier run)" if cf.get("reused") else ""))
    report = build_report(store, lasso, out / "report.html", "dmstore demo: datamodels of digits MLPs")
    echo(f"[5/5] report: {report}")
    echo(f"      query it: dmstore query {root} \"SELECT * FROM estimator_comparison\"")
    echo(f"done in {time.time() - t0:.0f} s")
    return {"fits": fits, "comparison": comp, "counterfactual": cf, "report": report}
