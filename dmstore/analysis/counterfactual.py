"""Ground-truth counterfactuals (paper section 4.1, appendix F, Algorithm A.2), by retraining
with the recipe that trained the fit's models: for each target, remove R (the top-k / bottom-k
weights, or k random train examples) from the full train set, train `trials` models without R,
and compare the mean margin drop (vs `trials` models on the full set) with the prediction
Σ_{i∈R} θ_i. Or retrain without each set of a removal-sets file."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..engine.query import run
from ..errors import InputError
from ..storage.parquet import encode_ranges
from ..store.commit import commit_analysis
from ..store.validate import read_table_file
from .retrain import agreement, fit_info, fit_targets, forget, target_weights, train_sets

SELECTORS = ("top", "bottom", "random")


def _select(train_ids, weights, selector, k, d, rng):
    if selector == "top":
        order = np.argsort(-weights, kind="stable")
        return train_ids[order[:k]][weights[order[:k]] > 0]
    if selector == "bottom":
        order = np.argsort(weights, kind="stable")
        return train_ids[order[:k]][weights[order[:k]] < 0]
    return rng.choice(d, size=k, replace=False)


def counterfactual(store, fit_id: int, targets=10, ks=(10, 20, 40, 80, 160),
                   selectors=("top", "bottom", "random"), trials: int = 20, seed: int = 0,
                   recipe: str | None = None, workers: int = 1, echo=None) -> dict:
    """Run Algorithm A.2 for `targets` (a count drawn at random, or ids) and write the
    `counterfactuals` relation, retraining with `workers` processes (`echo` gets the model count
    and a time estimate; `retrain.train_sets`). Returns Pearson and Spearman of predicted vs
    actual effects."""
    store.require_writable()
    bad = [s for s in selectors if s not in SELECTORS]
    if bad:
        raise InputError(f"unknown selector {bad[0]!r}; use {', '.join(SELECTORS)}")
    if trials < 1 or not ks or min(ks) < 1:
        raise InputError("trials and every k must be >= 1", params=("trials", "ks"))
    con, experiment, alpha, recipe, spec = fit_info(store, fit_id, recipe)
    d = store.d
    tids = fit_targets(con, fit_id, targets, seed)
    rng = np.random.default_rng(seed)
    rows, sets = [], [np.zeros(0, np.int64)]          # set 0: the full train set (baseline)
    for t in tids:
        ids, w = target_weights(con, fit_id, t)
        for sel in selectors:
            for k in ks:
                R = _select(ids, w, sel, int(k), d, rng)
                if len(R) == 0:
                    continue
                pred = float(w[np.isin(ids, R)].sum())
                rows.append((int(t), sel, int(k), len(sets), pred, np.sort(R)))
                sets.append(R)
    M, cached = train_sets(store, recipe, spec, sets, trials, seed, "counterfactual retrain", workers, echo=echo)
    base = M[0].mean(0)                                # [n_examples]
    out = {
        "fit_id": np.full(len(rows), int(fit_id), np.int64),
        "target_id": np.array([r[0] for r in rows], np.int32),
        "selector": [r[1] for r in rows],
        "k": np.array([r[2] for r in rows], np.int32),
        "trials": np.full(len(rows), trials, np.int32),
        "predicted_effect": np.array([r[4] for r in rows]),
        "actual_effect": np.array([float(base[r[0]] - M[r[3], :, r[0]].mean()) for r in rows]),
        "actual_std": np.array([float(M[r[3], :, r[0]].std()) for r in rows]),
        "baseline_margin": np.array([float(base[r[0]]) for r in rows]),
        "removed": [encode_ranges(r[5]) for r in rows],
        "set_id": pa.nulls(len(rows), pa.int64()),
    }
    commit_analysis(store, {"counterfactuals": pa.table(out)})
    forget(cached)
    return agreement(out)


def read_removals(path) -> dict:
    """A removal-sets file (CSV or Parquet; columns set_id, target_id, train_id) → arrays."""
    t = read_table_file(path, f"removals {path}")
    need = ("set_id", "target_id", "train_id")
    missing = [c for c in need if c not in t.column_names]
    if missing:
        raise InputError(f"removals {path}: missing column(s) {', '.join(missing)}; one row per removed "
                         f"training example: set_id, target_id, train_id")
    out = {}
    for c in need:
        if t[c].null_count:
            raise InputError(f"removals {path}: {c} is empty in some rows")
        try:
            out[c] = t[c].cast(pa.int64()).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InputError(f"removals {path}: {c} must hold integers") from None
    if not out["set_id"].size:
        raise InputError(f"removals {path}: no rows")
    return out


def counterfactual_removals(store, fit_id: int, removals, trials: int = 20, seed: int = 0,
                            recipe: str | None = None, workers: int = 1, echo=None) -> dict:
    """Retrain without each removal set of the file `removals` (set_id, target_id, train_id: the
    train examples R removed for that target) and record, per (set, target), the actual effect
    (mean margin over `trials` full-set models minus over `trials` models without R) beside the
    predicted one from `dm_removal_effect`, in `counterfactuals` (selector 'removals'). Sets
    with the same train ids are retrained once."""
    store.require_writable()
    if trials < 1:
        raise InputError("trials must be >= 1", params=("trials",))
    r = read_removals(removals)
    con, experiment, alpha, rec, spec = fit_info(store, fit_id, recipe)
    d = store.d
    for c, hi in (("train_id", d), ("target_id", store.n_examples)):
        bad = r[c][(r[c] < 0) | (r[c] >= hi)]
        if bad.size:
            raise InputError(f"removals {removals}: {c} {int(bad[0])} is not an example of this store "
                             f"({c} must be in 0..{hi - 1})")
    fit_targets(con, fit_id, np.unique(r["target_id"]), seed)   # every target has a datamodel
    pairs = {}
    for s_, t, i in zip(r["set_id"].tolist(), r["target_id"].tolist(), r["train_id"].tolist()):
        pairs.setdefault((s_, t), set()).add(i)
    sets, index = [np.zeros(0, np.int64)], {}
    for key, ids in pairs.items():
        fs = frozenset(ids)
        if fs not in index:
            index[fs] = len(sets)
            sets.append(np.array(sorted(fs), np.int64))
    con.register("_dm_removals", pa.table(r))
    pred = {(int(a), int(b)): float(c) for a, b, c in run(con, "removal_predictions", f=int(fit_id)).fetchall()}
    M, cached = train_sets(store, rec, spec, sets, trials, seed, "counterfactual retrain", workers, echo=echo)
    base = M[0].mean(0)
    keys = sorted(pairs)
    rows = [(s_, t, index[frozenset(pairs[(s_, t)])]) for s_, t in keys]
    out = {
        "fit_id": np.full(len(rows), int(fit_id), np.int64),
        "target_id": np.array([t for _, t, _ in rows], np.int32),
        "selector": ["removals"] * len(rows),
        "k": np.array([len(pairs[(s_, t)]) for s_, t, _ in rows], np.int32),
        "trials": np.full(len(rows), trials, np.int32),
        "predicted_effect": np.array([pred.get((s_, t), 0.0) for s_, t, _ in rows]),
        "actual_effect": np.array([float(base[t] - M[j, :, t].mean()) for _, t, j in rows]),
        "actual_std": np.array([float(M[j, :, t].std()) for _, t, j in rows]),
        "baseline_margin": np.array([float(base[t]) for _, t, _ in rows]),
        "removed": [encode_ranges(sets[j]) for _, _, j in rows],
        "set_id": np.array([s_ for s_, _, _ in rows], np.int64),
    }
    commit_analysis(store, {"counterfactuals": pa.table(out)})
    forget(cached)
    return {**agreement(out), "sets": len(sets) - 1}
