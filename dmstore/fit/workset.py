"""A working-set LASSO solver for a block of targets sharing one operator H (test targets: the
centred Gram), robust when models are not ≫ features.

FISTA's iterations grow with √κ of H; the centred Gram of 0/1 masks has κ ≈ ((1+√(d/m)) /
(1−√(d/m)))², ≈ 450 at d/m = 0.83. Restricted to a working set of p features the same matrix
has κ ≈ ((1+√(p/m))/(1−√(p/m)))² — single digits for p ≪ m — and each product costs p², not d².
So (as celer and skglm do, batched across the block's targets in torch):

    1. working set: the union over the block's columns of the warm start's support and the
       features whose KKT condition is most violated (|c_j − (Hw)_j| > λ);
    2. solve the restricted problem on H_WW (p × p, `Problem.block(idx)`) by FISTA with restarts
       to a fraction of the tolerance (the restricted duality gap);
    3. one product with the full operator gives the full gradient and the FULL problem's duality
       gap: columns with gap ≤ tol · ½s are done (the same certificate as `lasso_solve`); for
       the others, features violating KKT outside the set join it (at least doubling it), and
       the restricted solve resumes from where it stopped.

Weights outside the working set stay exactly zero, so the full product costs d·p per column.
"""
from __future__ import annotations

import torch

from .solvers import Problem, Solution, gram_matvec, lasso_objective_gap, lasso_solve, lipschitz_gram

MIN_GROW = 64          # features added at least when the set grows
INNER_FRACTION = 0.3   # the restricted problem is solved to this fraction of the tolerance
MAX_OUTER = 50


def _lip(H: torch.Tensor) -> float:
    return lipschitz_gram(H, iters=30) if H.shape[0] else 1.0


def ws_lasso_solve(P: Problem, lam: torch.Tensor, W0: torch.Tensor, tol: float = 1e-6,
                   max_iter: int = 1000) -> Solution:
    """LASSO for every column of the block at its own λ (lam [n]), warm-started at W0 [d, n], by
    working sets (module docstring). `P.block(idx)` must give H[idx][:, idx]. n_iter counts
    inner iterations plus one per full product; max_iter caps the inner iterations per column."""
    d, n = W0.shape
    dev, dt = W0.device, W0.dtype
    lam = lam.to(dt)
    scale = (0.5 * P.s.double()).clamp_min(1e-300)
    W = W0.clone()
    cols_all = torch.arange(n, device=dev)
    HW = P.matvec(W, cols_all)
    out = Solution(W.clone(), HW.clone(), torch.zeros(n, dtype=torch.float64, device=dev),
                   torch.zeros(n, dtype=torch.int32, device=dev), torch.zeros(n, dtype=torch.bool, device=dev),
                   torch.zeros(n, dtype=dt, device=dev))
    todo = torch.ones(n, dtype=torch.bool, device=dev)
    iters = torch.zeros(n, dtype=torch.int32, device=dev)
    ws = torch.zeros(d, dtype=torch.bool, device=dev)
    inner_tol = tol * INNER_FRACTION
    for _ in range(MAX_OUTER):
        _, gap, r2 = lasso_objective_gap(W, HW, P.C, P.s, lam)
        rel = gap / scale
        iters += todo.to(torch.int32)
        finish = todo & ((rel <= tol) | (iters >= max_iter))
        if finish.any():
            k = cols_all[finish]
            out.W[:, k], out.HW[:, k], out.r2[k] = W[:, k], HW[:, k], r2[k]
            out.rel_gap[k], out.n_iter[k], out.converged[k] = rel[k], iters[k], rel[k] <= tol
            todo &= ~finish
        if not todo.any():
            return out
        act = cols_all[todo]
        # KKT violations of the open columns outside the set: |c − Hw| − λ > 0 where w = 0
        viol = ((P.C[:, act] - HW[:, act]).abs() - lam[act]).amax(1)
        viol[ws] = -1
        support = W[:, act].ne(0).any(1)
        grow = max(MIN_GROW, int(ws.sum()))
        cand = (viol > 0).nonzero().squeeze(1)
        if cand.numel() > grow:
            cand = cand[viol[cand].topk(grow).indices]
        new = ws | support
        new[cand] = True
        if bool((new == ws).all()):
            inner_tol /= 10        # no feature to add: the restricted solve was not accurate enough
            if inner_tol < 1e-3 * tol * INNER_FRACTION:   # it cannot get better: report what we have
                iters[todo] = max_iter
                continue
        ws = new
        idx = ws.nonzero().squeeze(1)
        H = P.block(idx)
        L = torch.full((act.numel(),), _lip(H), dtype=dt, device=dev)
        sub = Problem(gram_matvec(H), P.C[idx][:, act], P.s[act], L)
        budget = int(max(1, max_iter - int(iters[act].max())))
        sol = lasso_solve(sub, lam[act], W[idx][:, act], inner_tol, budget)
        Wa = torch.zeros(d, act.numel(), dtype=dt, device=dev)
        Wa[idx] = sol.W
        W[:, act] = Wa
        iters[act] += sol.n_iter
        HW[:, act] = P.matvec(Wa, act)
    # MAX_OUTER reached: report the open columns as they are
    _, gap, r2 = lasso_objective_gap(W, HW, P.C, P.s, lam)
    k = cols_all[todo]
    rel = gap / scale
    out.W[:, k], out.HW[:, k], out.r2[k] = W[:, k], HW[:, k], r2[k]
    out.rel_gap[k], out.n_iter[k], out.converged[k] = rel[k], iters[k], rel[k] <= tol
    return out
