"""Ground-truth counterfactuals and the data-support search, by retraining with the recipe that
trained the fit's models (paper section 4.1, appendix F, Algorithms A.2 and 1).

    counterfactual: for each target, remove R (the top-k / bottom-k weights, or k random train
      examples) from the full train set, train `trials` models without R, and compare the mean
      margin drop (vs `trials` models on the full set) with the prediction Σ_{i∈R} θ_i.
    support: train on S minus the top-k weights over a grid of k, fit mean margin vs k with
      isotonic regression (decreasing), take its zero k̂, report ceil(1.2·k̂) and certify it by
      retraining without that many top examples.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa

from . import layout as L
from .batch import encode_ranges
from .errors import InputError, NotFoundError
from .recipes import load_recipe
from .train import _h64
from .progress import progress

SELECTORS = ("top", "bottom", "random")


def _fit_info(store, fit_id: int, recipe_spec: str | None = None):
    """(connection, experiment, alpha, recipe) of a fit. The recipe is the one `dmstore train`
    recorded for the fit's models (a built-in name or a plug-in's `module:attr`), or
    `recipe_spec` when given; its name and settings must match the models'."""
    con = store.connect()
    run = con.sql("SELECT experiment, alpha FROM fit_runs WHERE fit_id = $f", params={"f": int(fit_id)}).fetchall()
    if not run:
        raise NotFoundError(f"no fit {fit_id} in {store.root}; see `dmstore query STORE 'SELECT * FROM fit_runs'`")
    experiment, alpha = run[0]
    src = con.sql("SELECT DISTINCT source FROM models WHERE experiment = $e AND alpha = $a AND source LIKE 'train:%'",
                  params={"e": experiment, "a": alpha}).fetchall()
    if not src:
        raise InputError(f"fit {fit_id}: its models were not trained by `dmstore train`, so no recipe is "
                         f"known to retrain them; counterfactuals need the training recipe")
    from .recipes import BUILTIN
    from .train import recipe_source, recorded_recipe
    source = src[0][0]
    name = source.split(":")[1].split("/")[0]
    spec = recipe_spec or recorded_recipe(store, source) or (name if name in BUILTIN else None)
    if spec is None:
        raise InputError(f"fit {fit_id}: its models were trained by plug-in recipe {name!r}, whose module "
                         f"the store did not record (trained before dmstore recorded it); pass "
                         f"--recipe module:attribute")
    recipe = load_recipe(spec)
    if recipe.name != name:
        raise InputError(f"fit {fit_id}: recipe {spec!r} is named {recipe.name!r} but the models were "
                         f"trained by {name!r}; give the recipe that trained them")
    if recipe_source(recipe, "x").rsplit(":", 1)[0] != source.rsplit(":", 1)[0]:
        raise InputError(f"fit {fit_id}: its models were trained with other settings of recipe {name!r} "
                         f"({source.rsplit(':', 1)[0]}) than this dmstore's; retrained models would not be comparable")
    return con, experiment, alpha, recipe


def _targets(con, fit_id, targets, seed):
    ids = np.array([r[0] for r in con.sql(
        "SELECT DISTINCT target_id FROM fits WHERE fit_id = $f ORDER BY 1", params={"f": int(fit_id)}).fetchall()])
    if isinstance(targets, int):
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(ids, size=min(targets, ids.size), replace=False))
    t = np.asarray(targets)
    missing = np.setdiff1d(t, ids)
    if missing.size:
        raise InputError(f"fit {fit_id} has no datamodel for target {int(missing[0])}")
    return t


def _weights(con, fit_id, target):
    w = con.sql("SELECT train_id, weight FROM dm_weights($f) WHERE target_id = $t",
                params={"f": int(fit_id), "t": int(target)}).fetchnumpy()
    return w["train_id"], w["weight"].astype(np.float64)


def _select(train_ids, weights, selector, k, d, rng):
    if selector == "top":
        order = np.argsort(-weights, kind="stable")
        return train_ids[order[:k]][weights[order[:k]] > 0]
    if selector == "bottom":
        order = np.argsort(weights, kind="stable")
        return train_ids[order[:k]][weights[order[:k]] < 0]
    return rng.choice(d, size=k, replace=False)


def _train_sets(recipe, d, removal_sets, trials, seed, batch=500, desc="retrain"):
    """Train `trials` models on the full train set without each removal set (train ids);
    returns their margins float32 [n_sets, trials, n_examples]."""
    masks, seeds = [], []
    for i, R in enumerate(removal_sets):
        m = np.ones(d, bool)
        m[np.asarray(R, dtype=np.int64)] = False
        for t in range(trials):
            masks.append(m)
            seeds.append(_h64("counterfactual", seed, i, t))
    masks, seeds = np.array(masks), np.array(seeds, np.int64)
    out = None
    bar = progress(total=len(seeds), desc=desc, unit="model")
    order = np.argsort(masks.sum(1), kind="stable")  # equal subset sizes train together
    for lo in range(0, order.size, batch):
        rows = order[lo:lo + batch]
        y = recipe.train(masks[rows], seeds[rows])["margins"]
        if out is None:
            out = np.empty((len(seeds), y.shape[1]), np.float32)
        out[rows] = y
        bar.update(rows.size)
    bar.close()
    return out.reshape(len(removal_sets), trials, -1)


def counterfactual(store, fit_id: int, targets=10, ks=(10, 20, 40, 80, 160),
                   selectors=("top", "bottom", "random"), trials: int = 20, seed: int = 0,
                   recipe: str | None = None) -> dict:
    """Run Algorithm A.2 for `targets` (a count drawn at random, or ids) and write the
    `counterfactuals` relation. Returns Pearson and Spearman of predicted vs actual effects."""
    store._require_writable()
    bad = [s for s in selectors if s not in SELECTORS]
    if bad:
        raise InputError(f"unknown selector {bad[0]!r}; use {', '.join(SELECTORS)}")
    if trials < 1 or not ks or min(ks) < 1:
        raise InputError("--trials and every --k must be >= 1")
    con, experiment, alpha, recipe = _fit_info(store, fit_id, recipe)
    d = store.d
    tids = _targets(con, fit_id, targets, seed)
    rng = np.random.default_rng(seed)
    rows, sets = [], [np.zeros(0, np.int64)]          # set 0: the full train set (baseline)
    for t in tids:
        ids, w = _weights(con, fit_id, t)
        for sel in selectors:
            for k in ks:
                R = _select(ids, w, sel, int(k), d, rng)
                if len(R) == 0:
                    continue
                pred = float(w[np.isin(ids, R)].sum())
                rows.append((int(t), sel, int(k), len(sets), pred, np.sort(R)))
                sets.append(R)
    M = _train_sets(recipe, d, sets, trials, seed, desc="counterfactual retrain")
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
    _write_analysis(store, "counterfactuals", pa.table(out))
    return _agreement(out)


def _agreement(out: dict) -> dict:
    from scipy.stats import pearsonr, spearmanr
    rows = out["target_id"]
    p, a = out["predicted_effect"], out["actual_effect"]
    return {"n": len(rows), "pearson": float(pearsonr(p, a).statistic) if len(rows) > 2 else float("nan"),
            "spearman": float(spearmanr(p, a).statistic) if len(rows) > 2 else float("nan")}


def read_removals(path) -> dict:
    """A removal-sets file (CSV or Parquet; columns set_id, target_id, train_id) → arrays."""
    from .validate import read_table_file
    t = read_table_file(path, f"--removals {path}")
    need = ("set_id", "target_id", "train_id")
    missing = [c for c in need if c not in t.column_names]
    if missing:
        raise InputError(f"--removals {path}: missing column(s) {', '.join(missing)}; one row per removed "
                         f"training example: set_id, target_id, train_id")
    out = {}
    for c in need:
        if t[c].null_count:
            raise InputError(f"--removals {path}: {c} is empty in some rows")
        try:
            out[c] = t[c].cast(pa.int64()).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InputError(f"--removals {path}: {c} must hold integers") from None
    if not out["set_id"].size:
        raise InputError(f"--removals {path}: no rows")
    return out


def counterfactual_removals(store, fit_id: int, removals, trials: int = 20, seed: int = 0,
                            recipe: str | None = None) -> dict:
    """Retrain without each removal set of the file `removals` (set_id, target_id, train_id: the
    train examples R removed for that target) and record, per (set, target), the actual effect
    (mean margin over `trials` full-set models minus over `trials` models without R) beside the
    predicted one from `dm_removal_effect`, in `counterfactuals` (selector 'removals'). Sets
    with the same train ids are retrained once."""
    store._require_writable()
    if trials < 1:
        raise InputError("--trials must be >= 1")
    r = read_removals(removals)
    con, experiment, alpha, rec = _fit_info(store, fit_id, recipe)
    d = store.d
    for c, hi in (("train_id", d), ("target_id", store.n_examples)):
        bad = r[c][(r[c] < 0) | (r[c] >= hi)]
        if bad.size:
            raise InputError(f"--removals {removals}: {c} {int(bad[0])} is not an example of this store "
                             f"({c} must be in 0..{hi - 1})")
    _targets(con, fit_id, np.unique(r["target_id"]), seed)   # every target has a datamodel
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
    pred = {(int(a), int(b)): float(c) for a, b, c in con.sql(
        "SELECT set_id, target_id, predicted_effect FROM dm_removal_effect($f, '_dm_removals')",
        params={"f": int(fit_id)}).fetchall()}
    M = _train_sets(rec, d, sets, trials, seed, desc="counterfactual retrain")
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
    _write_analysis(store, "counterfactuals", pa.table(out))
    return {**_agreement(out), "sets": len(sets) - 1}


def support(store, fit_id: int, targets=10, ks=(10, 20, 40, 80, 160, 320, 640), trials: int = 20,
            seed: int = 0, recipe: str | None = None) -> dict:
    """Algorithm 1 (appendix F.3) for `targets`; writes the `support` relation."""
    from sklearn.isotonic import IsotonicRegression
    store._require_writable()
    con, experiment, alpha, recipe = _fit_info(store, fit_id, recipe)
    d = store.d
    ks = sorted(int(k) for k in ks if 0 < int(k) < d)
    tids = _targets(con, fit_id, targets, seed)
    sets, index, weights = [np.zeros(0, np.int64)], {}, {}
    for t in tids:
        ids, w = _weights(con, fit_id, t)
        order = np.argsort(-w, kind="stable")
        weights[int(t)] = ids[order][w[order] > 0]
        for k in ks:
            index[(int(t), k)] = len(sets)
            sets.append(weights[int(t)][:k])
    M = _train_sets(recipe, d, sets, trials, seed, desc="support search")
    mean = M.mean(1)                                    # [n_sets, n_examples]
    res = []
    for t in tids:
        t = int(t)
        grid = [0] + ks
        h = np.array([mean[0, t]] + [mean[index[(t, k)], t] for k in ks])
        iso = IsotonicRegression(increasing=False).fit(grid, h)
        fit_h = iso.predict(grid)
        k_hat = None
        if fit_h[0] < 0:
            k_hat = 0.0
        else:
            below = np.flatnonzero(fit_h < 0)
            if below.size:
                i = int(below[0])
                k0, k1, h0, h1 = grid[i - 1], grid[i], fit_h[i - 1], fit_h[i]
                k_hat = float(k0 + (k1 - k0) * h0 / (h0 - h1))
        res.append((t, k_hat, None if k_hat is None else int(math.ceil(1.2 * k_hat)), json.dumps(
            {str(k): float(v) for k, v in zip(grid, h)})))
    cert_t = [t for t, _, s, _ in res if s]
    cert = {}
    if cert_t:
        Mc = _train_sets(recipe, d, [weights[t][:s] for t, _, s, _ in res if s], trials, seed + 1,
                         desc="support certify")
        cert = {t: float(Mc[i, :, t].mean()) for i, t in enumerate(cert_t)}
    out = pa.table({
        "fit_id": np.full(len(res), int(fit_id), np.int64),
        "target_id": np.array([r[0] for r in res], np.int32),
        "k_hat": pa.array([r[1] for r in res], pa.float64()),
        "support": pa.array([r[2] for r in res], pa.int32()),
        "certified": pa.array([None if r[0] not in cert else cert[r[0]] < 0 for r in res], pa.bool_()),
        "certify_margin": pa.array([cert.get(r[0]) for r in res], pa.float64()),
        "grid": [r[3] for r in res],
    })
    _write_analysis(store, "support", out)
    n_cert = sum(1 for v in cert.values() if v < 0)
    return {"n": len(res), "with_support": len(cert), "certified": n_cert}


def _write_analysis(store, kind, table: pa.Table | None = None) -> int:
    """Commit one analysis unit: `kind` and `table`, or a dict of kind → table; returns the
    log version."""
    from .writer import commit_unit
    tables = kind if isinstance(kind, dict) else {kind: table}
    return commit_unit(store, L.ANALYSES, tables, "analysis", info={"relations": list(tables)})
