"""The training worker: trains a recipe's models batch by batch (`plan`) and ingests each
finished batch, resuming where an earlier run stopped and never duplicating a model."""
from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..progress import progress as progress_bar
from ..recipes import load_recipe
from ..storage import paths as P
from ..store import Store
from ..store.validate import ROLES, check_alpha
from .plan import plan_models
from .provenance import check_recipe, recipe_source


@dataclass
class TrainReport:
    trained: int
    skipped: int
    seconds: float

    def summary(self) -> str:
        rate = self.trained / self.seconds * 60 if self.seconds > 0 and self.trained else 0.0
        return (f"trained {self.trained} models ({self.skipped} already stored) in {self.seconds:.1f} s"
                + (f", {rate:,.0f} models/min" if rate else ""))


def _recipe(spec: str, opts: dict):
    """load_recipe(spec, **opts), with an error naming the option a recipe does not take."""
    try:
        return load_recipe(spec, **opts)
    except TypeError as e:
        if not opts:
            raise
        raise InputError(f"recipe {spec!r} takes no {', '.join(opts)} option ({e}); --data applies to recipes "
                         f"that read files (fashion)", params=tuple(opts)) from None


def _work(args):
    """Train and ingest the given batches (runs in a worker process or inline)."""
    (root, recipe_spec, experiment, alpha, role, seed, repeats, batches, threads, queue, opts) = args
    import torch
    if threads:
        torch.set_num_threads(threads)
    store = Store.open(root, "a")
    recipe = _recipe(recipe_spec, opts)
    source = recipe_source(recipe, role)
    for ks in batches:
        ks = np.asarray(ks)
        masks, seeds, mask_ids = plan_models(experiment, alpha, role, seed, ks, store.d, repeats)
        t0 = time.perf_counter()
        out = recipe.train(masks, seeds)
        secs = time.perf_counter() - t0
        store.append(experiment, alpha, masks, out["margins"], np.arange(store.n_examples),
                     seeds=seeds, mask_ids=mask_ids, roles=role, source=source, source_rows=ks,
                     train_accuracy=out.get("train_accuracy"), test_accuracy=out.get("test_accuracy"),
                     commit_info={"recipe": recipe.name, "recipe_spec": recipe_spec, "source": source,
                                  "alpha": alpha, "train_seconds": round(secs, 6),
                                  "threads": torch.get_num_threads()})
        if queue is not None:
            queue.put(ks.size)
    return True


def train(root, recipe: str = "digits", alpha: float = 0.5, models: int = 1000, batch: int = 500,
          seed: int = 0, experiment: str | None = None, repeats: int = 1, role: str = "fit",
          workers: int = 1, progress: bool | None = None, shard: tuple[int, int] | None = None,
          data=None) -> TrainReport:
    """Train `models` models of `recipe` on α-subsets into the store at `root` (created from the
    recipe's examples when missing), resuming where an earlier run stopped. `shard` = (K, N)
    trains only the plan's models k with k mod N = K: N shards (any scheduler, any machines
    sharing the store) together train exactly the unsharded run's models, model for model (same
    masks, seeds and plan rows; margins equal up to the float kernels of the machine)."""
    t0 = time.time()
    alpha = check_alpha(alpha)
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}, got {role!r}", params=("role",))
    if models < 1 or batch < 1 or repeats < 1 or workers < 1:
        raise InputError("models, batch, repeats and workers must be >= 1",
                         params=("models", "batch", "repeats", "workers"))
    if shard is not None and not (0 <= shard[0] < shard[1]):
        raise InputError(f"shard {shard[0]}/{shard[1]}: K/N needs 0 <= K < N", params=("shard",))
    opts = {} if data is None else {"data": str(data)}
    rec = _recipe(recipe, opts)
    experiment = experiment or rec.name
    if not (Path(root) / P.MANIFEST).exists():
        Store.create(root, examples=rec.examples(), exist_ok=True)   # shards may race to create it
    store = Store.open(root, "a")
    ex = rec.examples()
    if store.n_examples != ex.num_rows or store.d != int(np.sum(np.asarray(ex["split"].to_pylist()) == "train")):
        raise InputError(f"{root}: the store's examples ({store.d} train of {store.n_examples}) are not "
                         f"recipe {rec.name!r}'s; train into a new store")
    check_recipe(store, experiment, alpha, rec)
    source = recipe_source(rec, role)
    have = store.models(experiment, alpha, columns=["source", "source_row"])
    src = np.asarray(have["source"].to_pylist(), dtype=object)
    rows = have["source_row"].to_numpy(zero_copy_only=False)
    done = set(rows[src == source].astype(np.int64).tolist()) if rows.size else set()
    mine = range(models) if shard is None else range(shard[0], models, shard[1])
    pending = np.array([k for k in mine if k not in done], dtype=np.int64)
    batches = [pending[i:i + batch].tolist() for i in range(0, pending.size, batch)]
    bar = progress_bar(total=pending.size, desc=f"train {rec.name}", unit="model", enabled=progress)
    if workers == 1 or len(batches) <= 1:
        q = _InlineBar(bar)
        _work((str(root), recipe, experiment, alpha, role, seed, repeats, batches, None, q, opts))
    else:
        ctx = mp.get_context("spawn")
        q = ctx.Manager().Queue()
        shards = [batches[w::workers] for w in range(workers)]
        with ctx.Pool(workers) as pool:
            res = pool.map_async(_work, [(str(root), recipe, experiment, alpha, role, seed, repeats,
                                          s, 1, q, opts) for s in shards if s])
            while not res.ready():
                res.wait(0.2)
                while not q.empty():
                    bar.update(q.get())
            res.get()
        while not q.empty():
            bar.update(q.get())
    bar.close()
    return TrainReport(int(pending.size), len(done & set(mine)), time.time() - t0)


class _InlineBar:
    def __init__(self, bar):
        self.bar = bar

    def put(self, n):
        self.bar.update(n)
