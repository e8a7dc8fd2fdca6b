"""Retraining with the recipe that trained a fit's models: which recipe that is (the one
`dmstore train` recorded), the fit's targets and weights, and training models on the full train
set without given removal sets."""
from __future__ import annotations

import numpy as np

from ..engine.query import run
from ..errors import InputError, NotFoundError
from ..progress import progress
from ..recipes import BUILTIN, load_recipe
from ..train.plan import h64
from ..train.provenance import recipe_source, recorded_recipe


def fit_info(store, fit_id: int, recipe_spec: str | None = None):
    """(connection, experiment, alpha, recipe) of a fit. The recipe is the one `dmstore train`
    recorded for the fit's models (a built-in name or a plug-in's `module:attr`), or
    `recipe_spec` when given; its name and settings must match the models'."""
    con = store.connect()
    found = run(con, "fit_run", f=int(fit_id)).fetchall()
    if not found:
        raise NotFoundError(f"no fit {fit_id} in {store.root}; see `dmstore query STORE 'SELECT * FROM fit_runs'`")
    experiment, alpha = found[0]
    src = run(con, "trained_sources", e=experiment, a=alpha).fetchall()
    if not src:
        raise InputError(f"fit {fit_id}: its models were not trained by `dmstore train`, so no recipe is "
                         f"known to retrain them; counterfactuals need the training recipe")
    source = src[0][0]
    name = source.split(":")[1].split("/")[0]
    spec = recipe_spec or recorded_recipe(store, source) or (name if name in BUILTIN else None)
    if spec is None:
        raise InputError(f"fit {fit_id}: its models were trained by plug-in recipe {name!r}, whose module "
                         f"the store did not record (trained before dmstore recorded it); pass "
                         f"the recipe (recipe='module:attribute' in Python, --recipe on the command line)")
    recipe = load_recipe(spec)
    if recipe.name != name:
        raise InputError(f"fit {fit_id}: recipe {spec!r} is named {recipe.name!r} but the models were "
                         f"trained by {name!r}; give the recipe that trained them")
    if recipe_source(recipe, "x").rsplit(":", 1)[0] != source.rsplit(":", 1)[0]:
        raise InputError(f"fit {fit_id}: its models were trained with other settings of recipe {name!r} "
                         f"({source.rsplit(':', 1)[0]}) than this dmstore's; retrained models would not be comparable")
    return con, experiment, alpha, recipe


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


def train_sets(recipe, d, removal_sets, trials, seed, batch=500, desc="retrain"):
    """Train `trials` models on the full train set without each removal set (train ids);
    returns their margins float32 [n_sets, trials, n_examples]."""
    masks, seeds = [], []
    for i, R in enumerate(removal_sets):
        m = np.ones(d, bool)
        m[np.asarray(R, dtype=np.int64)] = False
        for t in range(trials):
            masks.append(m)
            seeds.append(h64("counterfactual", seed, i, t))
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


def agreement(out: dict) -> dict:
    from scipy.stats import pearsonr, spearmanr   # scipy loads slowly: only when needed
    rows = out["target_id"]
    p, a = out["predicted_effect"], out["actual_effect"]
    return {"n": len(rows), "pearson": float(pearsonr(p, a).statistic) if len(rows) > 2 else float("nan"),
            "spearman": float(spearmanr(p, a).statistic) if len(rows) > 2 else float("nan")}
