"""The cost–quality frontier of one experiment and alpha: fits on nested shares of the models
(`fit(models=N)`, reused when identical ones exist) for each estimator, then every fit there —
attribution methods included — with its held-out LDS against the models it used and the compute
it cost (the `frontier` macro, sql/frontier.sql)."""
from __future__ import annotations

import json

from ..engine.query import run
from ..errors import InputError
from ..storage import log

DEFAULT_ESTIMATORS = ("lasso", "diff_means")


def default_shares(total: int, start: int = 250) -> list[int]:
    """250, 500, 1,000, … doubling while below `total`, then `total` itself."""
    out, n = [], start
    while n < total:
        out.append(n)
        n *= 2
    return out + [total]


def train_rate(store, experiment: str, alpha: float) -> float | None:
    """Wall seconds to train one fit/val model of (experiment, alpha): the training seconds
    that `dmstore train` recorded in its commits over the models those commits added; None when
    the models were not trained by `dmstore train` (ingested)."""
    con = store.connect()
    sources = {r[0] for r in run(con, "frontier_sources", e=experiment, a=float(alpha)).fetchall()}
    secs, n = 0.0, 0
    for c in log.history(store.root):
        info = json.loads(c["info"] or "{}")
        if info.get("source") in sources and info.get("alpha") == float(alpha) and "train_seconds" in info:
            secs += float(info["train_seconds"])
            n += int(info.get("added", c["models_added"]))
    return secs / n if n else None


def frontier(store, experiment: str, alpha: float, models=None, estimators=DEFAULT_ESTIMATORS, targets="test",
             progress: bool | None = None, echo=None, **fit_kw) -> dict:
    """Run the missing fits of `estimators` on each share N of `models` (default: 250, 500, …,
    all fit + val models; N above the store's count is refused), reusing identical stored fits,
    and return {"rows": the frontier rows (list of dicts), "train_s_per_model": float | None,
    "fits": {(estimator, N): fit_id}}. `fit_kw` go to every fit (n_lambdas, path_patience, …)."""
    from ..fit import fit
    store.require_writable()
    total = int(store.model_ids(experiment, alpha, ["fit", "val"]).size)
    if total == 0:
        store.require_models(experiment, alpha, ["fit", "val"])
    shares = sorted(set(models)) if models else default_shares(total)
    if shares[0] < 3:
        raise InputError(f"models: each share needs at least 3 models, got {shares[0]}", params=("models",))
    if shares[-1] > total:
        raise InputError(f"models: {experiment!r} at alpha {alpha} has {total} fit + val models, fewer than "
                         f"{shares[-1]}; give shares up to {total} (or train more)", params=("models",))
    fits = {}
    for est in estimators:
        for n in shares:
            r = fit(store, experiment, alpha, estimator=est, targets=targets, models=None if n == total else n,
                    reuse=True, progress=progress, **fit_kw)
            fits[(est, n)] = r.fit_id
            if echo:
                echo(f"{est:<12} {n:>8,} models: fit {r.fit_id}" + (" (stored)" if r.reused else
                                                                      f" ({r.wall_time_s:.1f} s)"))
    rate = train_rate(store, experiment, alpha)
    con = store.pinned().connect()
    rel = run(con, "frontier_rows", e=experiment, a=float(alpha), r=rate)
    cols = rel.columns
    rows = [dict(zip(cols, r)) for r in rel.fetchall()]
    return {"rows": rows, "train_s_per_model": rate, "fits": fits}
