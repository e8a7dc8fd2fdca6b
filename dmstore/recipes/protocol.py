"""The recipe protocols, typed: what `dmstore train` needs of a recipe (`TrainingRecipe`) and
what `dmstore attribute` needs besides (`AttributionRecipe`), checked by one validator that
names what a plug-in lacks.

    class LogReg:                          # a plug-in recipe: any object with these members
        name = "logreg"
        def examples(self): ...            # pyarrow.Table: example_id, split, label[, …]; train ids first
        def train(self, masks, seeds): ... # masks bool[k, d], seeds int[k] -> dict(margins=float32[k, n], …)
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..errors import InputError


@runtime_checkable
class TrainingRecipe(Protocol):
    """Trains many models at once on given subsets and measures them."""
    name: str

    def examples(self):
        """pyarrow.Table with example_id, split, label[, group_key, …]; train examples first
        (ids 0..d-1: mask bit i is example i)."""

    def train(self, masks, seeds) -> dict:
        """masks bool[k, d], seeds int[k] → dict(margins=float32[k, n_examples] (correct-class
        margin on every example, id order), train_accuracy=float[k], test_accuracy=float[k])."""


@runtime_checkable
class AttributionRecipe(TrainingRecipe, Protocol):
    """A training recipe that attribution methods can differentiate through."""

    def model(self):
        """An untrained torch.nn.Module of the recipe's architecture."""

    def full_models(self, k: int, seed: int) -> list:
        """k models trained on every train example: [{"model": nn.Module, "checkpoints":
        [state_dict per epoch], "lrs": [float per epoch], "seed": int}]."""

    def attribution_data(self):
        """(inputs [n, …], labels int64 [n]) of every example, in id order."""

    def output(self, logits, y):
        """[n]: the per-example output datamodels predict (the correct-class margin)."""

    def loss(self, logits, y):
        """[n]: the per-example training loss."""

    def features(self, model, x):
        """[n, h]: the penultimate representation (representation similarity)."""


def missing(recipe, protocol: type) -> list[str]:
    """The members of `protocol` that `recipe` lacks (methods must be callable)."""
    out = []
    for c in reversed(protocol.__mro__):
        if c.__module__ != __name__:
            continue
        for n in vars(c).get("__annotations__", {}):
            if getattr(recipe, n, None) is None and n not in out:
                out.append(n)
        for n, v in vars(c).items():
            if callable(v) and not n.startswith("_") and not callable(getattr(recipe, n, None)) and n not in out:
                out.append(n)
    return out


def check(recipe, protocol: type, spec: str, purpose: str) -> None:
    """Raise InputError naming what `recipe` lacks of `protocol` for `purpose`."""
    lack = missing(recipe, protocol)
    if lack:
        raise InputError(f"recipe {spec!r} cannot be used {purpose}: it lacks {', '.join(lack)} (the "
                         f"{protocol.__name__} protocol in dmstore.recipes.protocol lists what each does)")
