"""`dmstore demo`: real datamodels end to end on a CPU, no download.

Trains small MLPs on 50 % subsets of scikit-learn's digits, fits LASSO datamodels for the 450
test digits (and the difference-of-means estimators for comparison), computes the attribution
baselines (TRAK, influence functions, TracIn-CP, Grad-Dot, representation similarity), checks
them all on held-out models, retrains a few counterfactuals, and writes an HTML report.
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


def _baselines(store, echo) -> dict:
    """Fits of the attribution baselines (`dmstore attribute` with each registered method's
    defaults: TRAK with 10 full-data models and a 512-dim projection, the others with 1); those
    needing dattri/traker are skipped with a note when `dmstore[attribution]` is not installed."""
    from .attribution import attribute, registry
    from .errors import InputError
    fits, missing = {}, []
    for method in [m.name for m in registry.METHODS.values() if m.in_demo]:
        try:
            r = attribute(store, method, experiment="digits", alpha=0.5, progress=False)
        except InputError as e:
            if "pip install" not in str(e):
                raise
            missing.append(method)
            continue
        fits[method] = r.fit_id
        echo(f"      {r.summary()}")
    if missing:
        echo(f"      skipped {', '.join(missing)}: pip install 'dmstore[attribution]' (dattri, traker) to add them")
    return fits


def demo(out="demo-out", models: int = 4000, eval_masks: int = 200, workers: int = 2,
         cf_targets: int = 6, baselines: bool = True, echo=print) -> dict:
    """Train, fit, compute the baselines (unless `baselines` is false), evaluate, retrain
    counterfactuals and write the report (module docstring); returns the fits, the comparison
    rows, the counterfactual agreement and the report's path."""
    t0 = time.time()
    n = 6 if baselines else 5
    out = Path(out)
    root = out / "store"
    echo(f"[1/{n}] training {models} digits MLPs on alpha = 0.5 subsets (resumes if {root} exists)")
    echo("      " + train(root, "digits", 0.5, models, batch=500, workers=workers).summary())
    echo(f"      and {eval_masks} held-out masks x 2 seeds as eval models")
    # batches of 2·eval_masks/workers (even: repeats share a batch) so every worker trains one
    eval_batch = max(2, 2 * -(-eval_masks // workers))
    echo("      " + train(root, "digits", 0.5, 2 * eval_masks, batch=eval_batch, role="eval", repeats=2,
                          workers=workers).summary())
    store = Store.open(root, "a")
    echo(f"[2/{n}] fitting datamodels for the 450 test digits")
    fits = {}
    for est in ("lasso", "diff_means", "diff_means_correct"):
        with warnings.catch_warnings():  # the summary line reports targets that hit the cap
            warnings.simplefilter("ignore")
            r = fit(store, "digits", 0.5, estimator=est, targets="test", n_lambdas=15, lambda_min_ratio=1e-2,
                    progress=False, reuse=True)
        fits[est] = r.fit_id
        echo(f"      {r.summary()}")
    step = 3
    if baselines:
        echo(f"[3/{n}] attribution baselines on the same targets (full-data models trained once, kept in the store)")
        fits.update(_baselines(store, echo))
        step = 4
    con = store.connect()
    comp = run(con, "demo_comparison", ids=list(fits.values())).fetchall()
    echo(f"[{step}/{n}] held-out evaluation on {comp[0][1]} eval models never used in fitting; each mean over the "
         f"targets where it is defined")
    for est, _, lds, n_lds, n_t, common, n_common, pear, auc, n_auc in comp:
        echo(f"      {est:<19} LDS {lds:.3f} ({n_lds}/{n_t} targets; {common:.3f} on the {n_common} common)   "
             f"pooled Pearson {pear:.3f}   AUC {auc:.3f} ({n_auc} targets)")
    lasso = fits["lasso"]
    agree = run(con, "label_agreement", f=lasso, k=10).fetchall()[0][0]
    echo(f"      top-10 positive neighbours sharing the test digit's label: {100 * agree:.1f} %")
    for t, lab, ids, labs in run(con, "demo_top5", f=lasso).fetchall():
        echo(f"      test {t} (a {lab}): top-5 train examples {ids} with labels {labs}")
    echo(f"[{step + 1}/{n}] counterfactual check: retraining without top/bottom/random sets for {cf_targets} test digits")
    cf = _stored_counterfactuals(con, lasso, cf_targets, (10, 20, 40, 80), 5) or \
        counterfactual(store, lasso, targets=cf_targets, ks=(10, 20, 40, 80), trials=5, workers=workers,
                       echo=lambda line: echo("      " + line))
    echo(f"      predicted vs actual margin drop over {cf['n']} removal sets: Pearson {cf['pearson']:.3f}, "
         f"Spearman {cf['spearman']:.3f}" + (" (stored by an earlier run)" if cf.get("reused") else ""))
    report = build_report(store, lasso, out / "report.html", "dmstore demo: datamodels of digits MLPs")
    echo(f"[{n}/{n}] report: {report}")
    echo(f"      query it: dmstore query {root} \"SELECT * FROM estimator_comparison\"")
    echo(f"      explore it: dmstore serve {root}")
    echo(f"done in {time.time() - t0:.0f} s")
    return {"fits": fits, "comparison": comp, "counterfactual": cf, "report": report}
