"""What attribution needs of a recipe (optional methods of the recipe protocol), and the
full-data models it trains, kept in the store so a rerun reuses them.

    model() -> nn.Module            an untrained model of the recipe's architecture
    full_models(k, seed) -> [{"model": nn.Module, "checkpoints": [state_dict per epoch],
                              "lrs": [float per epoch], "seed": int}]
                                    k models trained on every train example with the recipe's
                                    settings (seeds derived from `seed`)
    attribution_data() -> (inputs [n, ...], labels int64 [n])     every example, id order
    output(logits, y) -> [n]        the per-example output datamodels predict (the margin)
    loss(logits, y) -> [n]          the per-example training loss
    features(model, x) -> [n, h]    penultimate representation (representation similarity)

Typed as `dmstore.recipes.protocol.AttributionRecipe`; the built-in digits and MNIST-5k recipes
implement it; a plug-in recipe without them is refused naming what it lacks.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from ..recipes.protocol import AttributionRecipe, check
from ..storage import paths as P
from ..storage.files import replace_atomic
from ..train.provenance import recipe_source

def require_protocol(recipe, spec: str) -> None:
    """Raise InputError naming what `recipe` lacks of the AttributionRecipe protocol."""
    check(recipe, AttributionRecipe, spec, "for attribution")


def full_models(store, recipe, k: int, seed: int) -> tuple[list[dict], bool]:
    """K full-data models of `recipe` (seeded by `seed`): read from the store's cache when an
    earlier run trained them with the same recipe settings, else trained and cached (written
    privately, then renamed). Returns (models, whether they came from the cache)."""
    key = hashlib.blake2b(json.dumps([recipe_source(recipe, "full"), k, seed]).encode(), digest_size=8).hexdigest()
    path = Path(store.root) / P.ATTRIBUTION / f"models-{key}.pt"
    if path.exists():
        try:
            return _load(recipe, torch.load(path, map_location="cpu", weights_only=True)), True
        except Exception:   # noqa: BLE001  a torn or foreign cache file: train again
            path.unlink(missing_ok=True)
    models = recipe.full_models(k, seed)
    path.parent.mkdir(exist_ok=True)
    saved = [{"state": m["model"].state_dict(), "checkpoints": m["checkpoints"], "lrs": list(m["lrs"]),
              "seed": int(m["seed"])} for m in models]
    replace_atomic(path, lambda tmp: torch.save(saved, tmp))
    return models, False


def _load(recipe, saved: list) -> list[dict]:
    out = []
    for rec in saved:
        m = recipe.model()
        m.load_state_dict(rec["state"])
        out.append({"model": m.eval(), "checkpoints": rec["checkpoints"], "lrs": rec["lrs"], "seed": rec["seed"]})
    return out
