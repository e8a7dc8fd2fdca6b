"""Data support by the guided search of Algorithm 1 (appendix F.3): train on S minus the
top-k weights over a grid of k, fit mean margin vs k with isotonic regression (decreasing),
take its zero k̂, report ceil(1.2·k̂) and certify it by retraining without that many top
examples."""
from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa

from ..store.commit import commit_analysis
from .retrain import fit_info, fit_targets, forget, target_weights, train_sets


def support(store, fit_id: int, targets=10, ks=(10, 20, 40, 80, 160, 320, 640), trials: int = 20,
            seed: int = 0, recipe: str | None = None, workers: int = 1, echo=None) -> dict:
    """Algorithm 1 (appendix F.3) for `targets`; writes the `support` relation. `workers`
    training processes; `echo` gets the model count and time estimate (`retrain.train_sets`)."""
    from sklearn.isotonic import IsotonicRegression
    store.require_writable()
    con, experiment, alpha, recipe, spec = fit_info(store, fit_id, recipe)
    d = store.d
    ks = sorted(int(k) for k in ks if 0 < int(k) < d)
    tids = fit_targets(con, fit_id, targets, seed)
    sets, index, weights = [np.zeros(0, np.int64)], {}, {}
    for t in tids:
        ids, w = target_weights(con, fit_id, t)
        order = np.argsort(-w, kind="stable")
        weights[int(t)] = ids[order][w[order] > 0]
        for k in ks:
            index[(int(t), k)] = len(sets)
            sets.append(weights[int(t)][:k])
    M, cached = train_sets(store, recipe, spec, sets, trials, seed, "support search", workers, echo=echo)
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
        Mc, more = train_sets(store, recipe, spec, [weights[t][:s] for t, _, s, _ in res if s], trials, seed + 1,
                              "support certify", workers, echo=echo)
        cached += more
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
    commit_analysis(store, {"support": out})
    forget(cached)
    n_cert = sum(1 for v in cert.values() if v < 0)
    return {"n": len(res), "with_support": sum(r[1] is not None for r in res), "certified": n_cert}
