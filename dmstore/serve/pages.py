"""The data of each explorer page, as JSON-ready dicts (the HTML page and its `/api/` twin render
the same dict). Every number comes from a query of `sql/internal/serve_*.sql`; agreement between
methods (top-k overlap, Kendall τ) is computed here from the weights those queries return, and the
correlation of two fits' weights per target by dense blocks (`engine.weights.agreement`)."""
from __future__ import annotations

import json
import shlex

import numpy as np

from ..engine.udfs import kendall_one
from ..engine.weights import agreement
from ..errors import InputError, NotFoundError
from ..storage import paths as P

ORDERS = ("lds", "support", "disagreement", "id")
EXAMPLE_K = 20   # example pages up to this k read a per-fit table computed once per snapshot
# ... for fits of at most this many selected weights: one pass over 4·10⁷ dense weights took 14 s
# for that table against 0.35 s for one example's filtered scan (2 cores), so beyond it an
# example page scans for its own row (~9 s at 10⁹ weights, where the table took > 12 min)
EXAMPLE_INDEX_WEIGHTS = 5_000_000


def _example(s, i: int) -> dict:
    rows = s.rows("serve_example", i=int(i))
    if not rows:
        raise NotFoundError(f"example {i}: the store has no such example (ids are 0 … n_examples - 1)")
    return rows[0]


def _labels(s, ids) -> dict[int, dict]:
    ids = sorted({int(x) for x in ids})
    if not ids:
        return {}
    return {r["example_id"]: r for r in s.rows("serve_examples", ids=ids)}


def _train_size(s) -> int:
    """d: the store's train examples (its manifest's train_size)."""
    return int(json.loads((s.root / P.MANIFEST).read_text())["train_size"])


def _fit_ids(s) -> dict[int, dict]:
    return {r["fit_id"]: r for r in s.table("serve_fits")}


def _by_target(s, name: str, **params) -> dict[int, dict]:
    return {r["target_id"]: r for r in s.table(name, **params)}


def require_fit(s, fit) -> dict:
    fits = _fit_ids(s)
    if int(fit) not in fits:
        have = ", ".join(map(str, sorted(fits))) or "none"
        raise NotFoundError(f"fit {fit}: the store has no such fit (fits: {have})")
    return fits[int(fit)]


def home(s) -> dict:
    """Store at a glance: version, models per experiment/alpha/role, every fit with its held-out
    comparison (estimator_comparison)."""
    manifest = json.loads((s.root / P.MANIFEST).read_text())
    fits = s.table("serve_fits")
    return {"store": {"path": str(s.root.resolve()), "version": s.version,
                      "format_version": manifest.get("format_version"), "train_size": manifest.get("train_size"),
                      "n_examples": manifest.get("n_examples"), "images": s.images.source},
            "experiments": s.table("serve_experiments"), "fits": fits}


def target(s, t: int, k: int = 8) -> dict:
    """Target `t`: its example row; per fit holding it, the top-k positive and negative training
    examples with weights and labels, predicted vs actual margins on the eval models, its data
    support; pairwise agreement of the fits (top-k overlap of positive examples, Kendall τ of the
    weights over all d train examples); its stored counterfactuals; the command that tests a set."""
    ex = _example(s, t)
    fits = s.rows("serve_target_fits", t=int(t))
    d = _train_size(s)
    dense = {f["fit_id"]: np.zeros(d, dtype=np.float64) for f in fits}
    if fits:
        ws = s.arrays("serve_target_weights", t=int(t), fits=[f["fit_id"] for f in fits])
        for fid, v in dense.items():
            sel = ws["fit_id"] == fid
            v[ws["train_id"][sel]] = ws["weight"][sel]
    fids = [f["fit_id"] for f in fits]
    expected = {r["fit_id"]: r["expected_margin"] for r in s.rows("serve_expected_margin", fits=fids, t=int(t))} \
        if fits else {}
    searched = {r["fit_id"]: r for r in s.rows("serve_searched_support", t=int(t))} if fits else {}
    scatter = s.arrays("serve_target_scatter", fits=fids, t=int(t)) if fits else {}
    shown = set()
    for f in fits:
        w = dense[f["fit_id"]]
        pos = [int(i) for i in np.argsort(-w, kind="stable")[:k] if w[i] > 0]
        neg = [int(i) for i in np.argsort(w, kind="stable")[:k] if w[i] < 0]
        f["positive"] = [{"train_id": i, "weight": float(w[i])} for i in pos]
        f["negative"] = [{"train_id": i, "weight": float(w[i])} for i in neg]
        shown.update(pos + neg)
        sel = scatter["fit_id"] == f["fit_id"]
        f["scatter"] = [{"model_id": int(a), "predicted": float(b), "margin": float(c)} for a, b, c in
                        zip(scatter["model_id"][sel], scatter["predicted"][sel], scatter["margin"][sel])]
        f["support"] = _support(expected.get(f["fit_id"]), w, searched.get(f["fit_id"]))
        f["lds"] = _spearman(scatter["predicted"][sel], scatter["margin"][sel], f["estimator"])
        f["removals_command"] = (f"dmstore counterfactual {shlex.quote(str(s.root))} --fit {f['fit_id']} "
                                 f"--removals target{t}_fit{f['fit_id']}_top{k}.csv --trials 10")
        f["removals_csv"] = f"/api/target/{t}/removals.csv?fit={f['fit_id']}&k={k}"
    labels = _labels(s, shown)
    for f in fits:
        for side in ("positive", "negative"):
            for r in f[side]:
                r["label"] = labels.get(r["train_id"], {}).get("label")
    agree = []
    for a in range(len(fits)):
        for b in range(a + 1, len(fits)):
            fa, fb = fits[a], fits[b]
            pa_ = {r["train_id"] for r in fa["positive"]}
            pb_ = {r["train_id"] for r in fb["positive"]}
            agree.append({"fit_a": fa["fit_id"], "fit_b": fb["fit_id"],
                          "topk_overlap": len(pa_ & pb_) / k, "kendall": kendall_one(dense[fa["fit_id"]],
                                                                                   dense[fb["fit_id"]])})
    return {"example": ex, "k": k, "fits": fits, "agreement": agree,
            "counterfactuals": s.rows("serve_target_counterfactuals", t=int(t))}


def _spearman(pred: np.ndarray, margin: np.ndarray, estimator: str) -> float | None:
    """The target's held-out Spearman correlation as eval_metrics computes it (average ranks;
    the actual output is correctness for `*_correct` estimators; None where either is constant)."""
    from scipy.stats import rankdata
    actual = (margin > 0).astype(np.float64) if estimator.endswith("_correct") else margin.astype(np.float64)
    if pred.size < 2 or np.ptp(pred) == 0 or np.ptp(actual) == 0:
        return None
    return float(np.corrcoef(rankdata(pred), rankdata(actual))[0, 1])


def _support(e: float | None, w: np.ndarray, searched: dict | None) -> dict | None:
    """A target's heuristic data support (the data_support macro's definition, for one target,
    from its expected margin e and weight vector w [d]): the smallest k whose k largest positive
    weights (ties by train id) sum to e; 0 when e <= 0; None when no k does. `searched`: its
    guided-search row (support view), if any."""
    if e is None:
        return None
    pos = np.flatnonzero(w > 0)
    order = pos[np.lexsort((pos, -w[pos]))]
    csum = np.cumsum(w[order].astype(np.float64))
    hit = np.flatnonzero(csum >= e)
    return {"expected_margin": e, "support": 0 if e <= 0 else (int(hit[0]) + 1 if hit.size else None),
            "top_weight_sum": float(csum[-1]) if csum.size else None,
            "searched_support": (searched or {}).get("searched_support"), "certified": (searched or {}).get("certified")}


def removals_csv(s, t: int, fit: int, k: int) -> str:
    """A --removals file (set_id, target_id, train_id) holding target t's top-k positive
    training examples in `fit`."""
    require_fit(s, fit)
    _example(s, t)
    ws = s.rows("serve_target_weights", t=int(t), fits=[int(fit)])
    top = sorted((r for r in ws if r["weight"] > 0), key=lambda r: (-r["weight"], r["train_id"]))[:k]
    if not top:
        raise NotFoundError(f"target {t} has no positive weights in fit {fit}")
    return "set_id,target_id,train_id\n" + "".join(f"0,{t},{r['train_id']}\n" for r in top)


def example(s, i: int, k: int = 8) -> dict:
    """Training (or test) example `i`: the targets it influences most in each direction per fit,
    and where it is a test target's top leakage candidate."""
    ex = _example(s, i)
    by_fit: dict[int, dict] = {}
    fits = {r["fit_id"]: r for r in s.table("serve_fit_sizes")}     # not _fit_ids: no held-out metrics needed
    indexed = [fid for fid, f in fits.items() if f["n_weights"] <= EXAMPLE_INDEX_WEIGHTS] if k <= EXAMPLE_K else []
    rest = [fid for fid in fits if fid not in indexed]
    copied = [fid for fid in rest if fid in s.by_train_fits()]   # train-major copies: a few row groups
    scanned = [fid for fid in rest if fid not in copied]          # the others: one filtered scan
    if ex["split"] == "train":
        for query, fids in (("serve_example_by_train", copied), ("serve_example_influence", scanned)):
            for r in s.rows(query, i=int(i), k=int(k), fits=fids) if fids else ():
                by_fit.setdefault(r["fit_id"], {"fit_id": r["fit_id"], "positive": [], "negative": []})[r["direction"]].append(r)
    if ex["split"] == "train":
        for fid in indexed:   # one pass per fit over its weights, kept for the snapshot
            top = s.table("serve_example_top", f=fid, k=EXAMPLE_K)
            idx = s.cached(("example_top_index", fid), lambda top=top: {r["train_id"]: r for r in top})
            r = idx.get(int(i))
            if r is None:
                continue
            f = {"fit_id": fid, "positive": [], "negative": []}
            for side, t_, w_ in (("positive", "pos_t", "pos_w"), ("negative", "neg_t", "neg_w")):
                for rank, (t, w) in enumerate(zip((r[t_] or [])[:k], (r[w_] or [])[:k]), 1):
                    f[side].append({"fit_id": fid, "direction": side, "rank": rank, "target_id": t, "weight": w})
            if f["positive"] or f["negative"]:
                by_fit[fid] = f
        from_index = [x for fid in indexed if fid in by_fit for x in by_fit[fid]["positive"] + by_fit[fid]["negative"]]
        labels = _labels(s, [x["target_id"] for x in from_index])    # (the scan's rows carry theirs)
        for x in from_index:
            x["target_label"] = labels.get(x["target_id"], {}).get("label")
        by_fit = {fid: by_fit[fid] for fid in sorted(by_fit)}
    leaks = []
    if ex["split"] == "train":
        for fid, f in fits.items():
            for r in s.table("serve_leakage", f=fid):
                if r["train_id"] == int(i):
                    leaks.append({"fit_id": fid, "estimator": f["estimator"], "target_id": r["target_id"],
                                  "leakage_rank": r["leakage_rank"], "weight": r["weight"]})
    for fid, f in by_fit.items():
        f["estimator"] = fits.get(fid, {}).get("estimator")
    targets_of = s.rows("serve_target_fits", t=int(i))
    slow = [{"fit_id": fid, "n_weights": fits[fid]["n_weights"],
             "command": f"dmstore compact {shlex.quote(str(s.root))} --by-train {fid}"}
            for fid in scanned if fits[fid]["n_weights"] > EXAMPLE_INDEX_WEIGHTS] if ex["split"] == "train" else []
    return {"example": ex, "k": k, "influence": list(by_fit.values()), "leakage": leaks,
            "is_target_in": [r["fit_id"] for r in targets_of], "scanned": slow}


def leakage(s, fit: int, n: int = 50, page: int = 0) -> dict:
    """The suspected train–test leaks of `fit`: test targets by leakage rank with their top
    candidate (leakage(fit, 1))."""
    run_ = require_fit(s, fit)
    rows = s.table("serve_leakage", f=int(fit))
    lo = int(page) * int(n)
    return {"fit": run_, "rows": rows[lo:lo + n], "page": page, "more": len(rows) > lo + n}


def targets(s, fit: int, order: str = "lds", vs: int | None = None, n: int = 50, page: int = 0) -> dict:
    """The targets of `fit` with held-out LDS, data support and (with `vs`) the correlation of
    the two fits' weights, ordered by `order` (see ORDERS)."""
    if order not in ORDERS:
        raise InputError(f"order must be one of {', '.join(ORDERS)}, got {order!r}", params=("order",))
    if order == "disagreement" and vs is None:
        raise InputError("order=disagreement compares two fits: give vs=FIT too", params=("vs",))
    run_ = require_fit(s, fit)
    if vs is not None:
        require_fit(s, vs)
    def build():
        lds = _by_target(s, "serve_metrics", f=int(fit))
        sup = _by_target(s, "serve_support", f=int(fit))
        agree = agreement(s.con, int(fit), int(vs), _train_size(s)) if vs is not None else {}   # (lock held)
        return [{"target_id": r["target_id"], "label": r["label"], "lds": lds.get(r["target_id"], {}).get("lds"),
                 "support": sup.get(r["target_id"], {}).get("support"),
                 "expected_margin": sup.get(r["target_id"], {}).get("expected_margin"),
                 "agreement": agree.get(r["target_id"])}
                for r in s.table("serve_fit_targets", f=int(fit))]
    rows = s.cached(("targets", int(fit), vs), build)
    col = {"lds": "lds", "support": "support", "disagreement": "agreement", "id": "target_id"}[order]
    ordered = sorted(rows, key=lambda r: (r[col] is None, r[col] if r[col] is not None else 0, r["target_id"]))
    lo = int(page) * int(n)
    return {"fit": run_, "order": order, "vs": vs, "rows": ordered[lo:lo + n], "page": page,
            "more": len(ordered) > lo + n, "total": len(ordered), "fits": list(_fit_ids(s).values())}
