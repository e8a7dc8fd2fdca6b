"""Training recipes: how to train one batch of models on given subsets and measure them.

A recipe is any object with

    name: str
    examples() -> pyarrow.Table      # example_id, split, label[, group_key, …]; train ids first
    train(masks: bool[k, d], seeds: int[k]) -> dict(
        margins=float32[k, n_examples],     # correct-class margin on every example, id order
        train_accuracy=float[k], test_accuracy=float[k])

Optional, for `dmstore attribute` (TRAK, influence functions, TracIn, Grad-Dot, representation
similarity): `model()`, `full_models(k, seed)`, `attribution_data()`, `output(logits, y)`,
`loss(logits, y)` and `features(model, x)`. Both protocols are typed in `recipes.protocol`
(`TrainingRecipe`, `AttributionRecipe`); `protocol.check` names what a plug-in lacks. The built-in `digits` and `mnist5k`
recipes (`recipes.mlp.BatchedMLP`) implement them.

`load_recipe("digits")` gives a built-in one; `load_recipe("package.module:attr")` imports a
user's recipe (an object, or a zero-argument callable returning one).
"""
from __future__ import annotations

import importlib

from ..errors import InputError
from .protocol import AttributionRecipe, TrainingRecipe, check

__all__ = ["load_recipe", "BUILTIN", "TrainingRecipe", "AttributionRecipe", "check"]

BUILTIN = {
    "digits": ("dmstore.recipes.digits", "DigitsMLP"),
    "mnist5k": ("dmstore.recipes.mnist5k", "Mnist5kMLP"),
    "fashion": ("dmstore.recipes.fashion", "FashionMLP"),
    "cifar10": ("dmstore.recipes.cifar10", "Cifar10ResNet9"),
}


def load_recipe(spec: str, **kwargs):
    """A recipe by built-in name or `module:attribute`."""
    if spec in BUILTIN:
        mod, attr = BUILTIN[spec]
    elif ":" in spec:
        mod, attr = spec.split(":", 1)
    else:
        raise InputError(f"unknown recipe {spec!r}: use {', '.join(BUILTIN)} or module:attribute")
    try:
        obj = getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as e:
        raise InputError(f"recipe {spec!r} cannot be loaded: {e}") from None
    recipe = obj(**kwargs) if callable(obj) and not hasattr(obj, "train") else obj
    if isinstance(recipe, type):
        recipe = recipe(**kwargs)
    check(recipe, TrainingRecipe, spec, "for training")
    return recipe
