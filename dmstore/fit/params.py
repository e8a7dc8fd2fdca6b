"""The settings of one fit as one validated object: what `fit()` takes, what a sharded run
records and compares, and what `fit_runs.params` stores."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..errors import InputError
from .estimators import Estimator, estimator

DTYPES = {"float32": torch.float32, "float64": torch.float64}
DEVICES = ("auto", "cpu", "cuda")
SOLVERS = ("auto", "workingset", "activeset", "fista")   # lasso: see fit.estimators.Lasso


def resolve_device(device: str) -> torch.device:
    """'auto' (cuda when a GPU is present, else cpu) | 'cpu' | 'cuda' → a torch device."""
    if device not in DEVICES:
        raise InputError(f"device must be auto, cpu or cuda, got {device!r}", params=("device",))
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device cuda: no CUDA device is available here; use device cpu or auto",
                         params=("device",))
    return torch.device(device)


@dataclass(frozen=True)
class FitParams:
    """estimator: lasso | ridge | ols | diff_means | diff_means_correct; n_lambdas, lambda_min_ratio:
    the λ path (from each target's λ_max down to λ_max·ratio); tol: duality gap relative to the
    null model's objective; val_fraction, seed: the hash split of fit models for λ selection when
    the store has no val models; block_size: targets per block (None: ~1 GiB of work arrays);
    solver (lasso): activeset | workingset | fista | auto (= activeset for test targets where fit models > d, else workingset); path_patience: a target leaves the λ path after this many
    consecutive λ whose validation MSE is above its best (None: every target walks the whole path);
    the λ it skips have no rows in `fits`; models: fit on this many of the fit + val models, the
    first `models` in the seeded order of `stats.model_order` (nested: a smaller share is inside a
    larger one), None: all of them."""
    estimator: str = "lasso"
    n_lambdas: int = 30
    lambda_min_ratio: float = 1e-3
    device: str = "auto"
    dtype: str = "float32"
    keep_path: bool = False
    tol: float = 1e-6
    max_iter: int = 1000
    val_fraction: float = 0.1
    seed: int = 0
    block_size: int | None = None
    solver: str = "auto"
    path_patience: int | None = None
    models: int | None = None

    def __post_init__(self):
        estimator(self.estimator)   # a known estimator
        if self.dtype not in DTYPES:
            raise InputError(f"dtype must be float32 or float64, got {self.dtype!r}", params=("dtype",))
        if not (self.n_lambdas >= 1 and 0 < self.lambda_min_ratio < 1):
            raise InputError("n_lambdas must be >= 1 and lambda_min_ratio in (0, 1)",
                             params=("n_lambdas", "lambda_min_ratio"))
        if not (0 < self.tol < 1) or self.max_iter < 1:
            raise InputError("tol must be in (0, 1) and max_iter >= 1", params=("tol", "max_iter"))
        if not 0 < self.val_fraction < 1:
            raise InputError(f"val_fraction must be in (0, 1), got {self.val_fraction}", params=("val_fraction",))
        if self.device not in DEVICES:
            raise InputError(f"device must be auto, cpu or cuda, got {self.device!r}", params=("device",))
        if self.solver not in SOLVERS:
            raise InputError(f"solver must be one of {', '.join(SOLVERS)}, got {self.solver!r}", params=("solver",))
        if self.path_patience is not None and self.path_patience < 1:
            raise InputError(f"path_patience must be >= 1 (or None: the whole path), got {self.path_patience}",
                             params=("path_patience",))
        if self.models is not None and self.models < 3:
            raise InputError(f"models must be >= 3 (fit and val models), got {self.models}", params=("models",))
        if self.block_size is not None and self.block_size < 1:
            raise InputError("block_size must be >= 1", params=("block_size",))

    @property
    def est(self) -> Estimator:
        return estimator(self.estimator)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def path_length(self) -> int:
        """λ values solved per block (1 for single-solution estimators)."""
        return self.n_lambdas if self.est.path else 1

    def solver_options(self) -> dict:
        return dict(n_lambdas=self.path_length, lambda_min_ratio=self.lambda_min_ratio, tol=self.tol,
                    max_iter=self.max_iter, keep_path=self.keep_path, solver=self.solver,
                    path_patience=self.path_patience)

    def record(self) -> dict:
        """The settings as recorded in fit_runs.params and in a sharded run (`models` only when
        set, so a fit on every model keeps the identity it had before the option existed)."""
        out = asdict(self)
        if out["models"] is None:
            del out["models"]
        return out
