"""The paper's baselines and the field's, computed by dmstore itself and stored as fits:

    from dmstore.attribution import attribute
    attribute(store, "trak", models=10, proj_dim=512)      # → a fit named "trak"

`attribute` trains (or reuses, cached in the store) K full-data models with the recipe that
trained the store's models (`models`: the recipe protocol it needs), computes the method's
scores (`methods`: TRAK, influence functions, TracIn-CP, Grad-Dot, representation similarity,
through traker and dattri), and writes them through `ingest scores`: a fit named by the method,
calibrated on the fit models, scored on the eval models, its settings in `params`. A rerun with
the same settings returns the stored fit; a rerun after an interruption reuses the trained
models.
"""
from __future__ import annotations

import json
import time

import numpy as np

from ..analysis.retrain import experiment_recipe
from ..errors import InputError
from ..fit.params import resolve_device
from ..fit.results import FitResult
from ..ingest.scores import ingest_scores
from ..progress import progress as progress_bar
from ..storage import paths as P
from ..storage.units import new_unit_id
from . import methods
from .models import full_models, require_protocol

METHODS = methods.METHODS
DEFAULT_MODELS = {"trak": 10, "if": 1, "tracin": 1, "graddot": 1, "repsim": 1}

__all__ = ["attribute", "METHODS", "DEFAULT_MODELS"]


def _experiment(store, experiment, alpha):
    have = sorted({(r["experiment"], r["alpha"]) for r in store.experiments() if r["role"] == "fit"})
    if experiment is None and alpha is None and len(have) == 1:
        return have[0]
    if experiment is None or alpha is None:
        raise InputError(f"give experiment and alpha: the store holds {', '.join(f'{e} @ {a}' for e, a in have) or 'no fit models'}",
                         params=("experiment", "alpha"))
    return experiment, float(alpha)


def attribute(store, method: str, models: int | None = None, proj_dim: int = 512, experiment: str | None = None,
              alpha: float | None = None, targets="test", device: str = "auto", name: str | None = None,
              library: str | None = None, seed: int = 0, recipe: str | None = None,
              progress: bool | None = None, damping: float = 0.1) -> FitResult:
    """Compute `method`'s scores for `targets` with K = `models` full-data models (default: 10
    for TRAK, 1 otherwise) and store them as a fit named `name` (default: the method).
    `proj_dim`: TRAK's projection; `damping`: added to the Hessian (if); `library`: which
    implementation (methods.LIBRARIES). See the module docstring."""
    t0 = time.time()
    store.require_writable()
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r}", params=("method",))
    k = DEFAULT_MODELS[method] if models is None else int(models)
    if k < 1 or proj_dim < 1:
        raise InputError("models and proj_dim must be >= 1", params=("models", "proj_dim"))
    experiment, alpha = _experiment(store, experiment, alpha)
    con = store.connect()
    rec, spec = experiment_recipe(store, con, experiment, alpha, recipe, f"experiment {experiment!r} at alpha {alpha}")
    require_protocol(rec, spec)
    dev = resolve_device(device)
    tids = store.resolve_targets(targets)
    name = name or method
    lib = library or methods.LIBRARIES[method][0]
    settings = {"method": method, "library": lib, "models_trained": k, "seed": seed, "recipe": spec,
                "targets": [int(tids[0]), int(tids[-1]), int(tids.size)]}
    if method == "trak":
        settings["proj_dim"] = proj_dim
    if method == "if":
        if not damping > 0:
            raise InputError(f"damping must be > 0, got {damping}", params=("damping",))
        settings["damping"] = damping
    want = {kk: str(v) for kk, v in settings.items()}
    for r in store.fit_runs().to_pylist():   # resumable: the same settings were stored already
        stored = json.loads(r["params"]).get("params") or {}
        if r["estimator"] == name and r["experiment"] == experiment and r["alpha"] == alpha \
                and {kk: v for kk, v in stored.items() if kk != "compute_seconds"} == want:
            secs = float(stored.get("compute_seconds", 0)) + r["wall_time_s"]
            return FitResult(r["fit_id"], name, r["n_targets"], r["n_fit"], r["n_val"], 0, 0.0, secs,
                             r["device"], [], reused=True)
    bar = progress_bar(total=3, desc=f"attribute {name}", unit="step", enabled=progress)
    trained, cached = full_models(store, rec, k, seed)
    bar.update(1)
    X, y = rec.attribution_data()
    S = methods.scores(method, rec, trained, X, y, store.d, np.asarray(tids, np.int64), proj_dim, dev, library,
                         damping)
    bar.update(1)
    if S.shape != (store.d, tids.size):
        raise InputError(f"{method} returned scores of shape {S.shape}, not ({store.d}, {tids.size})")
    tmp = store.root / P.TMP / f"scores-{new_unit_id(store.root)}.npy"
    settings["compute_seconds"] = round(time.time() - t0, 1)   # models and scores (not compared on reuse)
    try:
        np.save(tmp, S)
        r = ingest_scores(store, tmp, name, experiment, alpha, layout="train-major", targets=tids, params=settings,
                          device=device, progress=False)
    finally:
        tmp.unlink(missing_ok=True)
    bar.update(1)
    bar.close()
    r.wall_time_s = time.time() - t0
    r.models_cached = cached
    return r
