"""`attribute`: train (or reuse) the full-data models, compute a registered method's scores, store
them as a fit through `ingest scores` (see the package docstring)."""
from __future__ import annotations

import json
import time

import numpy as np

from ..analysis.retrain import experiment_recipe
from ..errors import InputError
from ..fit.params import resolve_device
from ..fit.results import FitResult
from ..ingest.scores import check_name, ingest_scores
from ..progress import progress as progress_bar
from ..storage import lease
from ..storage.units import private_file
from ..store.fits import Claim, existing, identity
from . import methods, registry
from .models import full_models, require_protocol
from .registry import AttributionJob


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
    """Compute `method`'s scores (a `registry` entry) for `targets` with K = `models` full-data
    models (default: the method's) and store them as a fit named `name` (default: the method).
    `proj_dim`: TRAK's projection; `damping`: added to the Hessian (if); `library`: which
    implementation (the entry's `libraries`). See the module docstring."""
    t0 = time.time()
    store.require_writable()
    m = registry.get_or_raise(method)
    k = m.default_models if models is None else int(models)
    if k < 1 or proj_dim < 1:
        raise InputError("models and proj_dim must be >= 1", params=("models", "proj_dim"))
    if "damping" in m.options and not damping > 0:
        raise InputError(f"damping must be > 0, got {damping}", params=("damping",))
    lib = m.library(library)
    experiment, alpha = _experiment(store, experiment, alpha)
    name = check_name(name or method)
    con = store.connect()
    rec, spec = experiment_recipe(store, con, experiment, alpha, recipe, f"experiment {experiment!r} at alpha {alpha}")
    require_protocol(rec, spec)
    dev = resolve_device(device)
    tids = store.resolve_targets(targets)
    options = {o: v for o, v in (("proj_dim", proj_dim), ("damping", damping)) if o in m.options}
    settings = {"method": method, "library": lib, "models_trained": k, "seed": seed, "recipe": spec,
                "targets": [int(tids[0]), int(tids[-1]), int(tids.size)], **options}
    want = {kk: str(v) for kk, v in settings.items()}
    claim = Claim(name, experiment, alpha, identity(name, experiment, alpha, {"source": "attribute", "params": want},
                                                    0, 0))
    earlier = existing(store, claim)   # the same settings were stored already (perhaps by a racing run)
    if earlier is not None:
        return _stored(store, earlier)
    bar = progress_bar(total=3, desc=f"attribute {name}", unit="step", enabled=progress)
    trained, cached = full_models(store, rec, k, seed)
    bar.update(1)
    X, y = rec.attribution_data()
    S = methods.scores(m, AttributionJob(rec, trained, X, y, store.d, np.asarray(tids, np.int64), dev, lib, options))
    bar.update(1)
    if S.shape != (store.d, tids.size):
        raise InputError(f"{method} returned scores of shape {S.shape}, not ({store.d}, {tids.size})")
    want["compute_seconds"] = str(round(time.time() - t0, 1))   # models and scores (not part of the identity)
    with lease.held(store.root, "attribute"), private_file(store.root, "scores", ".npy") as tmp:
        np.save(tmp, S)
        r = ingest_scores(store, tmp, name, experiment, alpha, layout="train-major", targets=tids, params=want,
                          device=device, progress=False, source="attribute")
    bar.update(1)
    bar.close()
    if r.reused:   # an identical run committed while this one computed
        return _stored(store, existing(store.pinned(), claim) or {}, r)
    r.wall_time_s = time.time() - t0
    r.models_cached = cached
    return r


def _stored(store, row: dict, result: FitResult | None = None) -> FitResult:
    """The FitResult of a stored attribution fit, its wall time being its whole computation."""
    if not row:
        return result
    secs = float((json.loads(row["params"]).get("params") or {}).get("compute_seconds", 0)) + row["wall_time_s"]
    return FitResult.from_row(store, row, wall_time_s=secs)
