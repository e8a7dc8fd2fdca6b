"""Datamodels by regression: one fit per target example, all sharing the store's mask matrix.

    from dmstore.fit import fit
    r = fit(store, "digits", 0.5, estimator="lasso", targets="test", n_lambdas=30)

The rooms: `params` (the settings, validated), `scan` (streaming passes over the store),
`operators` and `blocks` (the linear algebra of a block of targets), `estimators` (lasso,
ridge, ols, diff_means as objects), `solvers` (batched FISTA and CG in torch), `stats`,
`predictions` (eval predictions), `results` (the tables written), `runs` (sharded runs).
"""
from .estimators import ESTIMATORS
from .params import FitParams
from .pipeline import fit
from .results import FitResult

__all__ = ["fit", "FitResult", "FitParams", "ESTIMATORS"]
