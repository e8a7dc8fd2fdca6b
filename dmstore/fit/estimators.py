"""Estimators as objects: each solves one block of targets (`blocks`) and returns the rows of
`fits` and the weights to write. Path estimators (lasso, ridge) walk a λ path on the fit
models, pick λ per target on validation models and refit on fit + val models at that λ
(appendix E.1); single-solution estimators (ols, diff_means, diff_means_correct) fit once on
fit + val models.

    est = estimator("lasso")
    rows, weights, best_k = est.solve(block, opts, bar)

rows: per λ a dict of arrays [n] (lam, bias, train_mse, val_mse, nnz, rel_gap, n_iter,
converged, selected, n_models); weights: (lam [n], W [d, n], k) with k = -1 for the selected
(refit) solution and the path index otherwise.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from .solvers import Problem, cg_solve, lasso_solve, ones_null
from .activeset import lasso_activeset
from .workingset import lasso_workingset


def to_numpy(v) -> np.ndarray:
    return v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)


def train_mse(P: Problem, W: torch.Tensor) -> torch.Tensor:
    """[n]: 1/m ‖X_c w − y_c‖² of each column, from the operator."""
    cols = torch.arange(W.shape[1], device=W.device)
    HW = P.matvec(W, cols)
    return (P.s - 2 * (P.C * W).sum(0) + (W * HW).sum(0)).clamp_min(0)


class Estimator:
    """name: as stored in fits/fit_runs; path: walks a λ path; on_correctness: fits the 0/1
    correctness (margin > 0) instead of the margin; reports_gap: fit_runs records the solver's
    duality gap and tolerance."""
    name = ""
    path = False
    on_correctness = False
    reports_gap = False
    needs_gram = True     # False: solved from the streamed vectors alone (train MSE by a second pass)

    def solve(self, block, opts: dict, bar):
        raise NotImplementedError


def _spread(v: torch.Tensor, a: torch.Tensor, n: int) -> torch.Tensor:
    """[n]: v [len(a)] at positions a, zero (False) elsewhere."""
    out = torch.zeros(n, dtype=v.dtype, device=v.device)
    out[a.to(v.device)] = v
    return out


class PathEstimator(Estimator):
    path = True

    def lam_max(self, P: Problem) -> torch.Tensor:
        raise NotImplementedError

    def solve_at(self, P: Problem, lam, W0, opts):
        """(W, train MSE, relative gap, iterations, converged) at per-target λ (lam [n])."""
        raise NotImplementedError

    def solve(self, block, opts, bar):
        n = block.n
        rows, weights = [], []
        P = block.problem("fit")
        mu, yb = block.center("fit")
        ratios = opts["lambda_min_ratio"] ** np.linspace(0, 1, opts["n_lambdas"])
        lam_max = self.lam_max(P)
        W = torch.zeros_like(P.C)
        best_mse = torch.full((n,), float("inf"), dtype=P.C.dtype, device=P.C.device)
        best_k = torch.zeros(n, dtype=torch.long, device=P.C.device)
        W_best = torch.zeros_like(P.C)
        path = []
        patience = opts.get("path_patience")
        active = torch.ones(n, dtype=torch.bool, device=P.C.device)   # still walking the path
        since = torch.zeros(n, dtype=torch.long, device=P.C.device)   # λ since the best validation MSE
        for k, r in enumerate(ratios):
            lam = lam_max * float(r)
            if not active.any():                # every target has left the path
                bar.update(ratios.size - k)
                break
            if active.all():
                W, r2, gap, nit, conv = self.solve_at(P, lam, W, opts)
            else:
                a = active.nonzero().squeeze(1)
                Wa, *rest = self.solve_at(P.take(a), lam[a], W[:, a], opts)
                W[:, a] = Wa
                r2, gap, nit, conv = (_spread(v, a, n) for v in rest)
            vm = block.val_mse(W, mu, yb)
            if vm is None:
                raise InputError("no validation models: add models with role 'val' or raise val_fraction",
                                 params=("val_fraction",))
            better = (vm < best_mse) & active
            best_mse = torch.where(better, vm, best_mse)
            best_k = torch.where(better, torch.full_like(best_k, k), best_k)
            W_best[:, better] = W[:, better]
            since = torch.where(better, torch.zeros_like(since), since + 1)
            path.append(dict(lam=lam, bias=yb - (mu * W).sum(0), train_mse=r2, val_mse=vm,
                             nnz=(W != 0).sum(0), rel_gap=gap, n_iter=nit, converged=conv, computed=active.clone()))
            if opts["keep_path"]:
                weights.append((lam, W * active.to(W.dtype), k))
            if patience is not None:
                active &= since < patience
            bar.update(1)
        # refit on fit + val models at each target's selected λ
        Pa = block.problem("all")
        mua, yba = block.center("all")
        lam_sel = lam_max * torch.as_tensor(ratios, dtype=P.C.dtype, device=P.C.device)[best_k]
        Wf, r2f, gapf, nitf, convf = self.solve_at(Pa, lam_sel, W_best, opts)
        n_fit, n_all = block.n_models("fit"), block.n_models("all")
        bk = best_k.cpu().numpy()
        for k, p in enumerate(path):
            sel = bk == k
            row = {key: to_numpy(v) for key, v in p.items()}
            row["computed"] = row["computed"].astype(bool)
            row["selected"] = sel
            row["n_models"] = n_fit.copy()
            row["n_models"][sel] = n_all[sel]
            for key, v in dict(bias=yba - (mua * Wf).sum(0), train_mse=r2f, nnz=(Wf != 0).sum(0),
                               rel_gap=gapf, n_iter=nitf, converged=convf).items():
                row[key] = np.where(sel, to_numpy(v), row[key])
            rows.append(row)
        weights.append((lam_sel, Wf, -1))
        return rows, weights, bk


class Lasso(PathEstimator):
    """min ½ wᵀHw − cᵀw + λ‖w‖₁ from λ_max (the smallest λ with w = 0): where the block shares one
    operator, by FISTA with anchored products and batched Newton–CG steps on the full problem
    (`activeset`, solver 'auto' or 'activeset') or by working sets ('workingset'); train targets
    (eq. 9) by working sets on sub-Grams formed from the masks' bits ('auto', 'workingset') or by
    batched FISTA with anchored products."""
    name = "lasso"
    reports_gap = True

    def lam_max(self, P):
        return P.C.abs().amax(0).clamp_min(1e-12)

    def solve_at(self, P, lam, W0, opts):
        solver = opts.get("solver", "activeset")        # 'auto' is resolved by the pipeline (resolve_solver)
        if solver == "workingset" and P.block is not None:
            sol = lasso_workingset(P, lam, W0, opts["tol"], opts["max_iter"])
        elif solver in ("auto", "activeset") and P.columns is not None:
            sol = lasso_activeset(P, lam, W0, opts["tol"], opts["max_iter"])
        else:
            sol = lasso_solve(P, lam, W0, opts["tol"], opts["max_iter"])
        return sol.W, sol.r2, sol.rel_gap, sol.n_iter, sol.converged


class Ridge(PathEstimator):
    """(H + λI) w = c by batched conjugate gradients, from 10·λmax(H) down."""
    name = "ridge"

    def lam_max(self, P):
        return 10 * P.L.clone()

    def solve_at(self, P, lam, W0, opts):
        n = P.n
        W, it = cg_solve(P, lam, W0, max_iter=opts["max_iter"])
        return W, train_mse(P, W), torch.zeros(n), torch.full((n,), int(it)), torch.ones(n, dtype=torch.bool)


class SingleEstimator(Estimator):
    """One solution on fit + val models; `weights(block, P, mu, opts)` gives (W [d, n], iterations)."""

    def weights(self, block, P: Problem, mu, opts):
        raise NotImplementedError

    def solve(self, block, opts, bar):
        n = block.n
        Pa = block.problem("all") if self.needs_gram or getattr(block, "G", 0) is not None else None
        mua, yba = block.center("all")
        Wf, nit = self.weights(block, Pa, mua, opts)
        zero = torch.zeros(n, dtype=Wf.dtype)
        mse = train_mse(Pa, Wf) if Pa is not None else torch.full((n,), float("nan"), dtype=Wf.dtype)
        row = dict(lam=zero, bias=yba - (mua * Wf).sum(0), train_mse=mse,
                   val_mse=torch.full((n,), float("nan")), nnz=(Wf != 0).sum(0), rel_gap=zero,
                   n_iter=nit, converged=torch.ones(n, dtype=torch.bool))
        row = {k: to_numpy(v) for k, v in row.items()}
        row["selected"] = np.ones(n, bool)
        row["n_models"] = block.n_models("all")
        bar.update(1)
        return [row], [(zero, Wf, -1)], np.zeros(n, np.int64)


class OLS(SingleEstimator):
    """Minimum-norm least squares (CG from zero, kept orthogonal to the all-ones null direction)."""
    name = "ols"

    def weights(self, block, P, mu, opts):
        n = P.n
        W, it = cg_solve(P, torch.zeros(n, dtype=P.C.dtype, device=P.C.device), torch.zeros_like(P.C),
                         max_iter=opts["max_iter"], null=ones_null(P, mu))
        return W, torch.full((n,), int(it))


class DiffMeans(SingleEstimator):
    """Paper eq. 15: mean output of models containing i minus those not (on margins, or on
    correctness for diff_means_correct)."""

    def __init__(self, name: str, on_correctness: bool = False):
        self.name, self.on_correctness = name, on_correctness

    needs_gram = False   # its weights are streamed sums; the pipeline streams its train MSE (no d×d Gram)

    def weights(self, block, P, mu, opts):
        return block.diff_means("all"), torch.zeros(block.n)


ESTIMATORS = {e.name: e for e in (Lasso(), Ridge(), OLS(), DiffMeans("diff_means"),
                                  DiffMeans("diff_means_correct", on_correctness=True))}


def estimator(name: str) -> Estimator:
    """The estimator called `name`."""
    try:
        return ESTIMATORS[name]
    except KeyError:
        raise InputError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {name!r}",
                         params=("estimator",)) from None
