"""The paper's baselines and the field's, computed by dmstore itself and stored as fits:

    from dmstore.attribution import attribute
    attribute(store, "trak", models=10, proj_dim=512)      # → a fit named "trak"

`attribute` trains (or reuses, cached in the store) K full-data models with the recipe that
trained the store's models (`models`: the recipe protocol it needs), computes the method's
scores (`methods`: TRAK, influence functions, TracIn-CP, Grad-Dot, representation similarity,
through traker and dattri), and writes them through `ingest scores`: a fit named by the method,
calibrated on the fit models, scored on the eval models, its settings in `params`. A rerun with
the same settings returns the stored fit; a rerun after an interruption reuses the trained
models.
"""
from __future__ import annotations

from .registry import METHODS, AttributionJob, Method, get_or_raise, register

__all__ = ["attribute", "METHODS", "Method", "AttributionJob", "register", "get_or_raise"]


def __getattr__(name):   # `attribute` imports torch and the libraries: only when used (the CLI lists methods)
    if name == "attribute":
        from .run import attribute
        return attribute
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
