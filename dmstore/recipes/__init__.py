"""Training recipes: how to train one batch of models on given subsets and measure them.

A recipe is any object with

    name: str
    examples() -> pyarrow.Table      # example_id, split, label[, group_key, …]; train ids first
    train(masks: bool[k, d], seeds: int[k]) -> dict(
        margins=float32[k, n_examples],     # correct-class margin on every example, id order
        train_accuracy=float[k], test_accuracy=float[k])

Optional, for `dmstore attribute` (TRAK, influence functions, TracIn, Grad-Dot, representation
similarity): `model()`, `full_models(k, seed)`, `attribution_data()`, `output(logits, y)`,
`loss(logits, y)` and `features(model, x)`, specified in `dmstore.attribution.models`; a
recipe without them is refused there naming what it lacks. The built-in `digits` and `mnist5k`
recipes (`recipes.mlp.BatchedMLP`) implement them.

`load_recipe("digits")` gives a built-in one; `load_recipe("package.module:attr")` imports a
user's recipe (an object, or a zero-argument callable returning one).
"""
from __future__ import annotations

import importlib

from ..errors import InputError

BUILTIN = {
    "digits": ("dmstore.recipes.digits", "DigitsMLP"),
    "mnist5k": ("dmstore.recipes.mnist5k", "Mnist5kMLP"),
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
    for need in ("name", "examples", "train"):
        if not hasattr(recipe, need):
            raise InputError(f"recipe {spec!r} has no {need!r}; see dmstore.recipes for the protocol")
    return recipe
