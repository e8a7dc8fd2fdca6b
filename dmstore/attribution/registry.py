"""The registry of attribution methods: one entry per method, read by everything that lists or
runs them — `dmstore attribute` (its choices and help), the demo's baselines, the README's table
(a test compares it) and `attribute` itself.

    from dmstore.attribution.registry import Method, register
    register(Method("mine", "my method", ("mypkg",), 1, "mypkg.attr:scores", what="…", default="K = 1"))

A method's `compute` is a function (or 'module:function', imported when first run) taking an
`AttributionJob` and returning float32 scores [d, n_targets] (train-major; positive = the
train example raises the target's output). This module imports nothing heavy: the CLI reads it.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from ..errors import InputError


@dataclass(frozen=True)
class Method:
    """One attribution method. `libraries`: which implementations compute it (the first is the
    default); `options`: the settings it takes besides the models (recorded with the fit);
    `in_demo`: whether `dmstore demo` computes it."""
    name: str
    title: str
    libraries: tuple[str, ...]
    default_models: int
    compute: Callable | str
    options: tuple[str, ...] = ()
    what: str = ""
    default: str = ""
    computed_with: str = ""
    in_demo: bool = True

    def function(self) -> Callable:
        if callable(self.compute):
            return self.compute
        mod, _, attr = self.compute.partition(":")
        return getattr(importlib.import_module(mod), attr)

    def library(self, library: str | None) -> str:
        """The implementation to use: `library`, checked, or the default."""
        if library is None:
            return self.libraries[0]
        if library not in self.libraries:
            raise InputError(f"method {self.name} is computed with {' or '.join(self.libraries)}, not {library}",
                             params=("library",))
        return library


@dataclass
class AttributionJob:
    """What a method computes from: the recipe, its K trained full-data models, every example's
    inputs X [n, …] and labels y int64 [n] (id order), d train examples, the target ids int64
    [n_targets], the device, the chosen library and the method's options."""
    recipe: object
    models: list
    X: object
    y: object
    d: int
    targets: object
    device: object
    library: str
    options: dict = field(default_factory=dict)


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add (or replace) a method; every consumer sees it."""
    METHODS[method.name] = method
    return method


def unregister(name: str) -> None:
    METHODS.pop(name, None)


def get_or_raise(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got {name!r}", params=("method",)) from None


def names() -> list[str]:
    return list(METHODS)


def libraries() -> list[str]:
    return sorted({lib for m in METHODS.values() for lib in m.libraries})


def markdown_table() -> str:
    """The README's table of methods."""
    rows = ["| method | computed with | what | default |", "|---|---|---|---|"]
    rows += [f"| `{m.name}` | {m.computed_with} | {m.what} | {m.default} |" for m in METHODS.values()]
    return "\n".join(rows)


_M = "dmstore.attribution.methods:"
for _m in (
    Method("trak", "TRAK", ("traker", "dattri"), 10, _M + "trak_scores", ("proj_dim",),
           "TRAK over K models", "K = 10, `--proj-dim 512`",
           "traker's `TRAKer` (`--library dattri`: dattri's `TRAKAttributor`)"),
    Method("if", "influence functions", ("dmstore", "dattri"), 1, _M + "influence_scores", ("damping",),
           "∇loss(test)ᵀ(H + λI)⁻¹∇loss(train), exact Hessian of the mean train loss", "`--damping 0.1`",
           "dmstore (torch.func; `--library dattri`: `IFAttributorExplicit`, small models only)"),
    Method("tracin", "TracIn-CP", ("dattri",), 1, _M + "tracin_scores", (),
           "Σ over per-epoch checkpoints of lr·⟨∇loss(train), ∇loss(test)⟩", "K = 1",
           "dattri's `TracInAttributor`, projector off"),
    Method("graddot", "gradient dot product", ("dattri",), 1, _M + "graddot_scores", (),
           "⟨∇loss(train), ∇loss(test)⟩ at the final model", "K = 1", "dattri, one checkpoint"),
    Method("repsim", "representation similarity", ("dmstore",), 1, _M + "repsim_scores", (),
           "cosine of penultimate-layer features", "K = 1", "dmstore"),
):
    register(_m)
