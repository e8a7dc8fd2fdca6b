"""The notebook's Store: `dmstore.Store` is the store facade (`dmstore.store.Store`) with the verbs
of the rooms above it — fit, attribute, ingest_scores, compare — so a notebook needs one import.

    import dmstore
    store = dmstore.Store.open("runs", mode="a")
    r = store.fit("digits", 0.5)               # a FitResult: r.weights(), r.metrics(), r.target_ids
    store.compare().to_pandas()                # the method table

The verbs live here, above `fit`, `attribution` and `ingest`, so the storage facade below them
imports none of those rooms.
"""
from __future__ import annotations

from .store import Store as _Store


class Store(_Store):
    """An opened store with notebook verbs (see `dmstore.store.Store` for the rest)."""

    def fit(self, experiment: str, alpha: float, **kw):
        """Fit datamodels (see `dmstore.fit.fit` for the keywords: estimator, targets, n_lambdas,
        reuse, …); returns a FitResult (`.fit_id`, `.weights()`, `.target_ids`, `.metrics()`).
        Needs the store opened with mode 'a'."""
        from .fit.pipeline import fit
        return fit(self, experiment, alpha, **kw)

    def attribute(self, method: str, **kw):
        """Compute an attribution baseline (trak, if, tracin, graddot, repsim, or a registered
        method; see `dmstore.attribution.attribute`) and store it as a fit; returns a FitResult."""
        from .attribution import attribute
        return attribute(self, method, **kw)

    def ingest_scores(self, path, name: str, experiment: str, alpha: float, **kw):
        """Bring another method's score matrix in as a fit (see `dmstore.ingest.scores.ingest_scores`);
        returns a FitResult."""
        from .ingest.scores import ingest_scores
        return ingest_scores(self, path, name, experiment, alpha, **kw)

    def compare(self):
        """The `estimator_comparison` rows (one per fit: held-out LDS with its CI and target
        count, Kendall τ, pooled Pearson, MSE, AUC) as a pyarrow Table (`.to_pandas()`)."""
        from .engine.query import run
        return run(self.connect(), "compare").to_arrow_table()
