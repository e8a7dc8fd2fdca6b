"""Training runs: the deterministic plan of a run (`plan`), which recipe trained which models
(`provenance`), and the worker that trains batch by batch and ingests each (`worker`)."""
from .plan import h64, plan_models
from .provenance import check_recipe, recipe_source, recorded_recipe
from .worker import TrainReport, train

__all__ = ["train", "TrainReport", "plan_models", "h64", "recipe_source", "recorded_recipe", "check_recipe"]
