"""Analyses that retrain or transform a fit and store what they find: counterfactuals and the
data-support search (by retraining with the fit's recipe, `retrain`), datamodel embeddings
(`embed`) and the HTML report (`report`)."""
from .counterfactual import counterfactual, counterfactual_removals, read_removals
from ..engine.weights import weight_matrix
from .embed import embed
from .report import build_report
from .support import support

__all__ = ["counterfactual", "counterfactual_removals", "read_removals", "support", "embed", "weight_matrix",
           "build_report"]
