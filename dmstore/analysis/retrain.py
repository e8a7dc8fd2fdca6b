"""Retraining with the recipe that trained a fit's models: which recipe that is (the one
`dmstore train` recorded), the fit's targets and weights, and training models on the full train
set without given removal sets."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..engine.query import run
from ..store.fits import require_fit
from ..errors import InputError
from ..progress import progress
from ..recipes import BUILTIN, load_recipe
from ..storage import paths as P
from ..storage.files import replace_atomic
from ..train.plan import h64
from ..train.provenance import recipe_source, recorded_recipe


def experiment_recipe(store, con, experiment, alpha, recipe_spec: str | None = None, what: str = "they"):
    """The recipe that trained the models of (experiment, alpha): the one `dmstore train`
    recorded (a built-in name or a plug-in's `module:attr`), or `recipe_spec` when given; its
    name and settings must match the models'. `what` names them in errors (e.g. 'fit 3')."""
    src = run(con, "trained_sources", e=experiment, a=alpha).fetchall()
    if not src:
        raise InputError(f"{what}: the models were not trained by `dmstore train`, so no recipe is known to "
                         f"retrain them; counterfactuals and attribution need the training recipe")
    source = src[0][0]
    name = source.split(":")[1].split("/")[0]
    spec = recipe_spec or recorded_recipe(store, source) or (name if name in BUILTIN else None)
    if spec is None:
        raise InputError(f"{what}: the models were trained by plug-in recipe {name!r}, whose module the store "
                         f"did not record (trained before dmstore recorded it); pass the recipe "
                         f"(recipe='module:attribute' in Python, --recipe on the command line)")
    recipe = load_recipe(spec)
    if recipe.name != name:
        raise InputError(f"{what}: recipe {spec!r} is named {recipe.name!r} but the models were trained by "
                         f"{name!r}; give the recipe that trained them")
    if recipe_source(recipe, "x").rsplit(":", 1)[0] != source.rsplit(":", 1)[0]:
        raise InputError(f"{what}: the models were trained with other settings of recipe {name!r} "
                         f"({source.rsplit(':', 1)[0]}) than this dmstore's; retrained models would not be comparable")
    return recipe, spec


def fit_info(store, fit_id: int, recipe_spec: str | None = None):
    """(connection, experiment, alpha, recipe, recipe spec) of a fit (`experiment_recipe`)."""
    row = require_fit(store, fit_id)
    con = store.connect()
    experiment, alpha = row["experiment"], row["alpha"]
    recipe, spec = experiment_recipe(store, con, experiment, alpha, recipe_spec, f"fit {fit_id}")
    return con, experiment, alpha, recipe, spec


def fit_targets(con, fit_id, targets, seed):
    ids = np.array([r[0] for r in run(con, "fit_targets", f=int(fit_id)).fetchall()])
    if isinstance(targets, int):
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(ids, size=min(targets, ids.size), replace=False))
    t = np.asarray(targets)
    missing = np.setdiff1d(t, ids)
    if missing.size:
        raise InputError(f"fit {fit_id} has no datamodel for target {int(missing[0])}")
    return t


def target_weights(con, fit_id, target):
    w = run(con, "target_weights", f=int(fit_id), t=int(target)).fetchnumpy()
    return w["train_id"], w["weight"].astype(np.float64)


CHUNK = 50           # models per chunk: progress and resumability every few seconds


def measured_rate(store, recipe_name: str) -> tuple[float, float] | None:
    """(models per second of one training process, alpha) that `dmstore train` measured for this
    recipe in this store (its commits record train_seconds), or None."""
    from ..storage.log import history
    n = secs = 0.0
    alpha = None
    for c in history(store.root):
        info = json.loads(c["info"])
        if info.get("recipe") == recipe_name and info.get("train_seconds") and c["models_added"]:
            n += c["models_added"]
            secs += float(info["train_seconds"])
            alpha = info.get("alpha", alpha)
    return (n / secs, alpha) if secs > 0 and alpha else None


def _estimate(store, recipe, sizes: np.ndarray, workers: int) -> str:
    """'about N s' for training models of these subset sizes, from the store's measured rate
    (time scales with the examples a model trains on), or a note that none is recorded."""
    rate = measured_rate(store, recipe.name)
    if rate is None:
        return "no training rate recorded in this store yet (the bar's ETA will tell)"
    per_model, alpha = 1.0 / rate[0], rate[1]
    secs = float(np.sum(sizes / (alpha * store.d))) * per_model / max(1, workers)
    return (f"about {secs / 60:.1f} min" if secs > 90 else f"about {secs:.0f} s") + \
        f" at this store's measured {60 * rate[0]:,.0f} models/min per process (alpha {alpha} models)"


_WORKER_RECIPE = {}


def _train_chunk(args):
    """Train one chunk (in a worker process or inline) and save its margins to `path`."""
    spec, masks, seeds, path, threads = args
    import torch
    if threads:
        torch.set_num_threads(threads)
    rec = _WORKER_RECIPE.get(spec) or _WORKER_RECIPE.setdefault(spec, load_recipe(spec))
    y = np.asarray(rec.train(masks, seeds)["margins"], np.float32)

    def save(tmp):
        with open(tmp, "wb") as fh:     # a file object: np.save would add .npy to a name
            np.save(fh, y)
    replace_atomic(path, save)
    return str(path)


def train_sets(store, recipe, spec: str, removal_sets, trials: int, seed: int, desc: str = "retrain",
               workers: int = 1, chunk: int = CHUNK, echo=None) -> tuple[np.ndarray, list]:
    """Train `trials` models on the full train set without each removal set (train ids), in
    chunks of `chunk` equal-size models over `workers` processes (one torch thread each).
    Finished chunks are kept in STORE/_retrain/ until the caller commits (`forget`), so a rerun
    after an interruption trains only what is missing. `echo` (a function) gets a line with the
    number of models and an estimate of the time before training starts. Returns (margins
    float32 [n_sets, trials, n_examples], the cache files to `forget` after the commit)."""
    d = store.d
    masks, seeds = [], []
    for i, R in enumerate(removal_sets):
        m = np.ones(d, bool)
        m[np.asarray(R, dtype=np.int64)] = False
        for t in range(trials):
            masks.append(m)
            seeds.append(h64("counterfactual", seed, i, t))
    masks, seeds = np.array(masks), np.array(seeds, np.int64)
    sizes = masks.sum(1)
    source = recipe_source(recipe, "full")
    cache = Path(store.root) / P.RETRAIN
    cache.mkdir(exist_ok=True)
    chunks = []   # (rows, path): rows of equal subset size (they train together)
    for size in np.unique(sizes):
        rows = np.flatnonzero(sizes == size)
        for lo in range(0, rows.size, chunk):
            r = rows[lo:lo + chunk]
            key = hashlib.blake2b(source.encode() + np.packbits(masks[r]).tobytes() + seeds[r].tobytes(),
                                  digest_size=12).hexdigest()
            chunks.append((r, cache / f"{key}.npy"))
    todo = [(r, p) for r, p in chunks if not p.exists()]
    n_todo = int(sum(r.size for r, _ in todo))
    if echo is not None:
        reused = len(seeds) - n_todo
        echo(f"{desc}: {len(seeds)} full-data models ({len(removal_sets)} sets x {trials} trials)"
             + (f", {reused} kept from an interrupted run" if reused else "")
             + (f"; {n_todo} to train with {workers} worker(s): " + _estimate(store, recipe, sizes[
                 np.concatenate([r for r, _ in todo])], workers) if n_todo else ""))
    bar = progress(total=n_todo, desc=desc, unit="model")
    tasks = [(spec, masks[r], seeds[r], p, 1 if workers > 1 else None) for r, p in todo]
    sizes_of = {str(p): r.size for r, p in todo}
    if workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            bar.update(sizes_of[_train_chunk(t)])
    else:
        import multiprocessing as mp
        with mp.get_context("spawn").Pool(workers) as pool:
            for done in pool.imap_unordered(_train_chunk, tasks):
                bar.update(sizes_of[done])
    bar.close()
    out = None
    for r, p in chunks:
        y = np.load(p)
        if out is None:
            out = np.empty((len(seeds), y.shape[1]), np.float32)
        out[r] = y
    return out.reshape(len(removal_sets), trials, -1), [p for _, p in chunks]


def forget(paths) -> None:
    """Remove retrained chunks once their results are committed."""
    for p in paths:
        Path(p).unlink(missing_ok=True)


def agreement(out: dict) -> dict:
    from scipy.stats import pearsonr, spearmanr   # scipy loads slowly: only when needed
    rows = out["target_id"]
    p, a = out["predicted_effect"], out["actual_effect"]
    return {"n": len(rows), "pearson": float(pearsonr(p, a).statistic) if len(rows) > 2 else float("nan"),
            "spearman": float(spearmanr(p, a).statistic) if len(rows) > 2 else float("nan")}
