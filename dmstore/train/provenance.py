"""Which recipe trained which models: each batch lands with `source =
"train:<recipe>[/<config hash>]:<role>"` (the hash fingerprints the recipe's `config()`), and
the log commit records the recipe's spec (`digits`, `module:attr`), so a store can be extended,
resumed or retrained only with the same settings."""
from __future__ import annotations

import hashlib
import json

from ..errors import InputError
from ..storage import log


def recipe_source(recipe, role: str) -> str:
    """`train:<name>[/<hash of recipe.config()>]:<role>`."""
    cfg = recipe.config() if hasattr(recipe, "config") else None
    tag = ""
    if cfg:
        tag = "/" + hashlib.blake2b(json.dumps(cfg, sort_keys=True).encode(), digest_size=4).hexdigest()
    return f"train:{recipe.name}{tag}:{role}"


def recorded_recipe(store, source: str) -> str | None:
    """The recipe spec (`digits`, `module:attr`) that `dmstore train` recorded in the log for
    models of `source` (`train:<name>[/<hash>]:<role>`), or None."""
    prefix = source.rsplit(":", 1)[0]
    for c in reversed(log.commits_after(store.root, 0)):
        info = c.get("info", {})
        if info.get("recipe_spec") and str(info.get("source", "")).rsplit(":", 1)[0] == prefix:
            return info["recipe_spec"]
    return None


def check_recipe(store, experiment: str, alpha: float, recipe) -> None:
    """Refuse to mix recipe settings within one experiment and alpha."""
    have = store.models(experiment, alpha, columns=["source"])["source"].to_pylist()
    mine = recipe_source(recipe, "x").rsplit(":", 1)[0]
    other = sorted({s.rsplit(":", 1)[0] for s in have if s.startswith(f"train:{recipe.name}")} - {mine})
    if other:
        raise InputError(f"experiment {experiment!r} at alpha {alpha} was trained with other settings of "
                         f"recipe {recipe.name!r} ({other[0]}, now {mine}); use a new experiment name",
                         params=("experiment",))
