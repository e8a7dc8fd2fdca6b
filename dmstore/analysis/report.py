"""An HTML report of one fit with the paper's pictures for its data: predicted vs actual margins
on eval models (figure 5), neighbour images (figure 9, when examples carry 8×8 `features`),
the data-support distribution (figure 7), predicted vs actual counterfactuals (figure 8) and the
method comparison (Table K.1: every estimator and attribution method on the held-out models),
and the actual effect of removing each method's top-k (figure F.4). Figures are embedded PNGs;
the page has no external assets."""
from __future__ import annotations

import base64
import html
import io

import numpy as np

from ..engine.query import run
from ..store.fits import require_fit


def _subplots(*args, figsize, **kw):
    """A figure and its axes drawn by the Agg canvas of its own, never through pyplot: the
    caller's matplotlib backend and open figures are left alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(*args, **kw)


def _png(fig, alt: str, caption: str, width: int = 640) -> str:
    """A figure as an embedded PNG, centred at `width` px (laptop-sized), with alt text and a
    caption that says how to read it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode()
    return (f'<figure><img alt="{html.escape(alt)}" style="width:{width}px" src="data:image/png;base64,{data}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _table(rows: list[dict], cols: list[str], fmt=lambda v: v) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(fmt(r[c])))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _num(v):
    if isinstance(v, float):
        return "" if v != v else f"{v:.3f}"
    return v


def build_report(store, fit_id: int, path, title: str = "dmstore report", all_fits: bool = False) -> str:
    """Write the report of `fit_id` to `path` (HTML); returns the path. Table K.1 lists the
    newest fit of each estimator on the same experiment and alpha (`all_fits`: every fit)."""
    con = store.connect()
    p = {"f": int(fit_id)}
    require_fit(store, fit_id)
    runs = run(con, "report_run", **p).to_arrow_table().to_pylist()
    run_ = runs[0]
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>Fit {fit_id}: <b>{run_['estimator']}</b> on experiment <b>{html.escape(run_['experiment'])}</b>, "
             f"alpha {run_['alpha']}, {run_['n_fit']} fit + {run_['n_val']} val models, {run_['n_targets']} targets, "
             f"{run_['wall_time_s']:.1f} s on {run_['device']}.</p>"]

    # Table K.1
    comp = run(con, "report_comparison", e=run_["experiment"], a=run_["alpha"], all=bool(all_fits), f=int(fit_id),
               est=run_["estimator"]).to_arrow_table().to_pylist()
    parts.append("<h2>Methods on held-out models (Table K.1)</h2>")
    if comp:
        for r in comp:
            ci = "" if r["lds_ci_lo"] is None else f" [{r['lds_ci_lo']:.3f}, {r['lds_ci_hi']:.3f}]"
            r["lds (95 % CI)"] = ("" if r["lds"] is None else f"{r['lds']:.3f}") + ci
            r["targets with lds"] = f"{r['n_lds']} of {r['n_targets']}"
            r["lds, common targets"] = "" if r["lds_common"] is None else f"{r['lds_common']:.3f} ({r['n_common']})"
            r["kind"] = "attribution" if r["is_attribution"] else "regression"
        parts.append(_table(comp, ["fit_id", "estimator", "kind", "models_used", "lds (95 % CI)", "targets with lds",
                                   "lds, common targets", "kendall", "pooled_pearson", "mse", "auc", "n_auc",
                                   "n_eval_models"], _num))
        uneven = [r["estimator"] for r in comp if r["n_lds"] != r["n_targets"]]
        parts.append(
            "<p>lds: mean per-target Spearman correlation of predicted and actual outputs on the held-out eval "
            "models (outputs are margins, or correctness for <code>*_correct</code> estimators, whose MSE is on "
            "that 0/1 scale), with a 95 % bootstrap interval over targets; it is defined only for targets whose "
            "outputs and predictions vary on the eval models, so compare methods on <i>lds, common targets</i>: the "
            "targets that have one in every fit listed (their number in parentheses)"
            + (f" — {', '.join(html.escape(e) for e in uneven)} average(s) over fewer targets than the fit has" if uneven
               else "")
            + ". kendall: mean Kendall tau-b. pooled_pearson: over all (model, target) pairs. auc: the prediction "
              "as a score for correctness, over the n_auc targets where both classes occur. models_used: models "
              "trained for the method (an attribution method's full-data models), or a regression's fit + val "
              "models; attribution scores are calibrated per target (scale and offset) on the store's fit models, "
              "which changes MSE but not the rank-based lds or kendall.</p>")
    else:
        parts.append("<p>No eval models: train some with <code>--role eval</code>.</p>")

    # the cost-quality frontier (`dmstore frontier`)
    from .frontier import train_rate
    rate = train_rate(store, run_["experiment"], run_["alpha"])
    fr = run(con, "frontier_rows", e=run_["experiment"], a=run_["alpha"], r=rate).to_arrow_table().to_pylist()
    fr = [r for r in fr if r["lds"] is not None]
    by_est: dict = {}
    for r in fr:
        by_est.setdefault((r["estimator"], r["kind"]), []).append(r)
    parts.append("<h2>Cost–quality frontier</h2>")
    if any(len({r["models_used"] for r in v}) > 1 for v in by_est.values()):
        panels = [("models_used", "models used (log scale)")] + ([("compute_s", "compute seconds (log scale)")]
                                                                 if rate else [])
        fig, axes = _subplots(1, len(panels), figsize=(5.2 * len(panels), 3.9), squeeze=False)
        for ax, (col, label) in zip(axes[0], panels):
            for (est, kind), pts in sorted(by_est.items()):
                pts = sorted((p for p in pts if p[col]), key=lambda p: p[col])
                if not pts:
                    continue
                x = [p[col] for p in pts]
                y = [p["lds"] for p in pts]
                lo = [p["lds"] - (p["lds_ci_lo"] if p["lds_ci_lo"] is not None else p["lds"]) for p in pts]
                hi = [(p["lds_ci_hi"] if p["lds_ci_hi"] is not None else p["lds"]) - p["lds"] for p in pts]
                ax.errorbar(x, y, yerr=[lo, hi], fmt="o-" if kind == "regression" else "s", capsize=2, label=est)
            ax.set_xscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel("held-out LDS")
        axes[0][0].legend(fontsize=7)
        parts.append(_png(
            fig, "Held-out LDS of every method against the models it used" + (" and its compute" if rate else ""),
            "Each point is one fit on experiment " + html.escape(run_["experiment"]) + f" at alpha {run_['alpha']}: "
            "its held-out LDS (95 % bootstrap interval over targets) against the models it used — a regression "
            "fit on a nested share of the models (`dmstore frontier`, `fit --models N`), an attribution method's "
            "full-data models" + (f" — and against its compute: the models' training time at the "
                                  f"{rate:.3f} s per model the store's training commits recorded, plus the fit "
                                  "(an attribution method: its recorded compute)" if rate else "")
            + ". Lines join one estimator's shares; the highest curve at a budget is the method to use there.",
            width=760 if rate else 640))
    else:
        parts.append("<p>One fit per method so far: run <code>dmstore frontier STORE --experiment "
                     f"{html.escape(run_['experiment'])} --alpha {run_['alpha']}</code> to fit each estimator on "
                     "nested shares of the models and draw the frontier here.</p>")

    # figure 5
    pv = run(con, "report_scatter", **p).fetchnumpy()
    n_all = run(con, "n_predictions", **p).fetchall()[0][0]
    if len(pv["predicted"]):
        fig, ax = _subplots(figsize=(5.2, 4.4))
        lo, hi = np.percentile(np.r_[pv["predicted"], pv["margin"]], [0.5, 99.5])
        hb = ax.hexbin(pv["predicted"], pv["margin"], gridsize=60, bins="log", cmap="Blues", mincnt=1,
                       extent=(lo, hi, lo, hi))
        fig.colorbar(hb, ax=ax, label="points per cell (log)")
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xlabel("datamodel prediction")
        ax.set_ylabel("actual margin (eval models)")
        r = np.corrcoef(pv["predicted"], pv["margin"])[0, 1]
        ax.set_title(f"Figure 5: predicted vs actual, r = {r:.3f}")
        shown = len(pv["predicted"])
        parts += ["<h2>Predicted vs actual margins (figure 5)</h2>", _png(
            fig, f"Density of datamodel predictions against actual margins of held-out models, Pearson r = {r:.3f}",
            f"Each point is one (held-out eval model, target) pair: x the datamodel's prediction for the model's "
            f"training subset, y the margin the trained model really had. Shown as a density of {shown:,} pairs"
            + (f" (a reproducible sample of all {n_all:,})" if n_all > shown else "")
            + f"; the dashed line is y = x, r = {r:.3f} the Pearson correlation over the pairs shown. Points near "
              "the line mean the datamodel predicts what training on that subset does.")]

    # figure 9: neighbours
    has_feat = run(con, "has_function", name="neighbor_features").fetchall()[0][0]
    agree = run(con, "label_agreement", k=10, **p).fetchall()[0][0]
    parts.append("<h2>Nearest training examples by datamodel weight (figure 9)</h2>")
    if agree is not None:
        parts.append(f"<p>{100 * agree:.1f} % of the top-10 positive neighbours share the target's label.</p>")
    if has_feat:
        nb = run(con, "report_neighbors", **p).to_arrow_table().to_pylist()
        tids = sorted({r["target_id"] for r in nb})
        if tids and len(nb[0]["target_features"]) == 64:
            fig, axes = _subplots(len(tids), 11, figsize=(11, 1.15 * len(tids)), squeeze=False)
            for row, t in zip(axes, tids):
                for a in row:
                    a.axis("off")
                mine = [r for r in nb if r["target_id"] == t]
                row[0].imshow(np.reshape(mine[0]["target_features"], (8, 8)), cmap="gray_r")
                row[0].set_title(f"test #{t}\nlabel {mine[0]['target_label']}", fontsize=7, fontweight="bold")
                for r in mine:
                    col = r["rank"] if r["direction"] == "positive" else 5 + r["rank"]
                    row[col].imshow(np.reshape(r["train_features"], (8, 8)), cmap="gray_r")
                    row[col].set_title(f"#{r['train_id']} ({r['train_label']})\n"
                                       f"{'+' if r['weight'] > 0 else ''}{r['weight']:.2f}", fontsize=6,
                                       color="green" if r["weight"] > 0 else "red")
            parts.append(_png(
                fig, f"Test digits {', '.join(map(str, tids))} beside their 5 most positive and 5 most negative "
                     f"training examples by datamodel weight", "Each row: a test digit (its example id and label, "
                "bold), then its 5 training examples with the largest positive weights (green) and the 5 with the "
                "most negative weights (red), each titled with its example id, its label in parentheses, and the "
                "weight (margin units). Positive neighbours mostly share the test digit's label; negative ones "
                "are often look-alikes of another class.", width=760))

    # figure 7: data support
    cdf = run(con, "report_support_cdf", **p).fetchnumpy()
    parts.append("<h2>Data support, heuristic (figure 7, appendix F.3.2)</h2>")
    if len(cdf["support"]):
        from matplotlib.ticker import FixedLocator, ScalarFormatter
        n_t, n_sup = run(con, "report_support_counts", **p).fetchall()[0]
        fig, ax = _subplots(figsize=(5.2, 3.6))
        ax.step(cdf["support"], cdf["fraction"], where="post")
        ax.set_xscale("symlog", linthresh=1)
        top = max(1, int(cdf["support"].max()))
        ticks = [0] + [10 ** i for i in range(0, len(str(top)) + 1) if 10 ** i <= 10 * top]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_ylim(0, 1)
        ax.axhline(n_sup / max(n_t, 1), color="gray", ls=":", lw=1)
        ax.set_xlabel("k (smallest number of top weights summing to the expected margin)")
        ax.set_ylabel("fraction of targets with support <= k")
        missing = n_t - n_sup
        parts.append(_png(
            fig, f"Cumulative distribution of the heuristic data support; {missing} of {n_t} targets have none",
            f"For each k, the fraction of the fit's {n_t} targets whose heuristic support is at most k: the "
            f"smallest number of largest weights whose sum reaches the target's expected margin (k on a "
            f"symmetric log axis). {missing} of {n_t} targets ({100 * missing / max(n_t, 1):.0f} %) have no "
            f"support: their positive weights never add up to the expected margin, so the curve stops at "
            f"{n_sup / max(n_t, 1):.2f} (dotted line) instead of 1. Small k means a prediction that rests on "
            f"a few training examples (brittle)."))
    sup = run(con, "report_search_counts", **p).fetchall()[0]
    if sup[0]:
        parts.append(f"<p>Guided search (Algorithm 1): {sup[1]} of {sup[0]} targets got a support estimate, "
                     f"{sup[2]} certified by retraining.</p>")

    # figure 8: counterfactuals
    cf = run(con, "report_counterfactuals", **p).fetchnumpy()
    parts.append("<h2>Counterfactuals: predicted vs actual (figure 8)</h2>")
    if len(cf["selector"]):
        fig, ax = _subplots(figsize=(4.6, 4.2))
        for sel, c in (("top", "tab:red"), ("bottom", "tab:blue"), ("random", "tab:gray"),
                       ("removals", "tab:purple")):
            k = cf["selector"] == sel
            if not k.any():
                continue
            ax.scatter(cf["predicted_effect"][k], cf["actual_effect"][k], s=12, c=c, label=sel)
        lo = min(cf["predicted_effect"].min(), cf["actual_effect"].min())
        hi = max(cf["predicted_effect"].max(), cf["actual_effect"].max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        r = np.corrcoef(cf["predicted_effect"], cf["actual_effect"])[0, 1] if len(cf["selector"]) > 2 else float("nan")
        ax.set_title(f"Figure 8: r = {r:.3f}")
        ax.set_xlabel("predicted margin drop (sum of removed weights)")
        ax.set_ylabel("actual margin drop (retrained)")
        ax.legend(fontsize=7)
        parts.append(_png(
            fig, f"Predicted against actual margin drops of {len(cf['selector'])} retrained removal sets, r = {r:.3f}",
            "Each point is one (target, removal set): x the datamodel's predicted drop in the target's margin "
            "(the sum of the removed examples' weights), y the drop measured by retraining without the set "
            "(mean over trials, against models trained on the full set). Sets are the top-k (red), bottom-k "
            "(blue) or random (gray) examples by weight, or sets from a --removals file (purple); the dashed "
            "line is y = x."))
    else:
        parts.append("<p>No counterfactuals yet: run <code>dmstore counterfactual</code>.</p>")

    # figure F.4: removing each method's top-k
    fx = run(con, "report_topk_effects", e=run_["experiment"], a=run_["alpha"]).to_arrow_table().to_pylist()
    tops = {}
    for r in fx:
        key = (r["estimator"], r["fit_id"]) if r["selector"] == "top" else ("random", None)
        tops.setdefault(key, []).append((r["k"], r["actual"]))
    parts.append("<h2>Removing each method's top-k training examples (figure F.4)</h2>")
    if any(k[0] != "random" for k in tops):
        fig, ax = _subplots(figsize=(5.2, 3.8))
        for (est, fid), pts in sorted(tops.items(), key=lambda kv: (kv[0][0] == "random", str(kv[0]))):
            by_k = {}
            for k, a in pts:
                by_k.setdefault(k, []).append(a)
            ks = sorted(by_k)
            ax.plot(ks, [np.mean(by_k[k]) for k in ks], "o-" if est != "random" else "s:",
                    label=est if est == "random" else f"{est} (fit {fid})", color="gray" if est == "random" else None)
        ax.set_xscale("log")
        ax.set_xlabel("k (training examples removed)")
        ax.set_ylabel("mean actual margin drop (retrained)")
        ax.legend(fontsize=7)
        names = sorted({k[0] for k in tops if k[0] != "random"})
        parts.append(_png(
            fig, f"Mean actual margin drop against k when retraining without each method's top-k examples: "
                 f"{', '.join(names)}",
            "For each method (a line), the targets' margins were measured by retraining without the k training "
            "examples that method ranks highest (its largest weights or scores), averaged over the targets and "
            "trials of `dmstore counterfactual --fit F --selectors top`; gray: k random examples. A higher line "
            "means the method finds the examples that matter most for its targets (paper appendix F.4)."))
    else:
        parts.append("<p>No top-k counterfactuals yet: run <code>dmstore counterfactual --fit F --selectors "
                     "top,random</code> for each method to compare.</p>")

    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
             "img{max-width:100%;height:auto}figure{margin:1.5em auto;text-align:center}"
             "figcaption{max-width:44em;margin:.5em auto;text-align:left;font-size:90%;color:#444}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
    with open(path, "w") as f:
        f.write(page)
    return str(path)
