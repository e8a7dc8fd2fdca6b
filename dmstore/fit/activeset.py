"""Active-set Newton steps for the LASSO, for blocks where models are not ≫ features.

FISTA's iterations grow with √κ of the operator; the centred Gram of 0/1 masks has
κ ≈ ((1+√(d/m))/(1−√(d/m)))² (≈ 450 at d/m = 0.83), and at small λ the support itself holds
hundreds to thousands of features, so even a working set stays ill-conditioned. But FISTA finds
the support and signs long before it reaches a small duality gap. Given them, the LASSO optimum
solves one linear system,

    H_SS w_S = c_S − λ·sign(w_S),   w_j = 0 off S,

exact whatever κ (a direct solve, float64). Feature-sign search (Lee et al. 2007) makes that a
descent method: from the current point it moves toward the system's solution only as far as
the objective decreases along the segment (a coefficient reaching zero leaves S); when the full
step is taken, the features off S that violate the KKT condition |c_j − (Hw)_j| ≤ λ join S with
the sign of their gradient; it stops when none does — the exact optimum.
Whatever the steps do, a column is reported converged only by the full problem's duality gap
(`lasso_objective_gap`), the same certificate as FISTA's.

    sol = lasso_activeset(P, lam, W0, tol, max_iter)   # FISTA, Newton on the open columns, FISTA again

Used where every column shares one operator whose columns can be read (`Problem.columns`):
test targets; and in data space (`Problem.block` for H_SS, one product with the masks for the
gradient) where working sets leave a column to the full problem. Per column a step costs
|S|³/3 (the solve) plus d·|S| (the gradient) or one product.
"""
from __future__ import annotations

import torch

from .newton_cg import newton_cg
from .solvers import Problem, Solution, lasso_objective_gap, lasso_solve

FISTA_FIRST = 400     # FISTA iterations before per-column Newton steps on the open columns (bench_solver --quick: 100 → 69 s, 250 → 32 s, 400 → 24 s, 600 → 29 s)
CG_AFTER = 100        # FISTA iterations before batched Newton–CG steps (`newton_cg`): enough to find the support
MAX_SUPPORT = 4000    # larger supports keep FISTA (a step would cost more than its iterations)
MAX_STEPS = 40        # Newton steps per column
GROW = 256            # most violating features added per step


def resolve_solver(solver: str, d: int, n_fit: int | None = None) -> str:
    """The solver 'auto' stands for, by the shape (measured by bench_solver on one machine, each
    pair in one run): where the fit models outnumber the d train examples, FISTA with anchored
    products then batched Newton–CG steps ('activeset': at d = 4,000, m = 4,800, 20 targets, 10 λ
    to 10⁻³·λmax, 48 s with 0 (target, λ) at the cap, against working sets 193 s and FISTA 108 s
    with 38 at the cap; before anchored products working sets took 158 s, and 615 s at
    d = 12,000 with 29 at the cap); where they do not (H singular, supports bounded by m, CG
    directions wild), working sets ('workingset'). Others as named."""
    if solver != "auto":
        return solver
    return "activeset" if n_fit is None or n_fit > d else "workingset"


def resolve_train_solver(solver: str) -> str:
    """The solver of train targets (eq. 9: one operator per target, whose sub-Grams on index sets can
    be formed from the masks' bits but whose columns are a pass over all d): working sets under
    'auto' and 'workingset' (a full pass per round, the rest on [p, p] sub-Grams), FISTA with
    anchored products under 'fista' and 'activeset' (the Newton steps need a readable Gram)."""
    return "workingset" if solver in ("auto", "workingset") else "fista"


def solver_choice(solver: str, n_test: int, n_train: int, train_solver: str = "fista", test_rows: bool = False) -> dict:
    """What each kind of target block runs (solvers as resolved), as recorded in
    `fit_runs.params.runtime.solver`."""
    newton = (f"fista with anchored products, then batched Newton-CG steps on columns open after {CG_AFTER} "
              f"iterations (per-column feature-sign steps after {FISTA_FIRST} where the Gram has no preconditioner)")
    out = {}
    if n_test and test_rows:
        out["test"] = ("working sets in data space (fit models not more than train examples): sub-Grams from the "
                       "masks' bits, the full gap by products with the packed masks, no d x d Gram; FISTA then "
                       "feature-sign steps on the full problem past the sub-problem size")
    elif n_test:
        out["test"] = {"fista": "fista with anchored products", "activeset": newton}.get(
            solver, f"working sets certified by the full gap; on each, {newton}")
    if n_train:
        out["train"] = ("working sets on eq. 9 sub-Grams certified by the full gap; FISTA then feature-sign steps on "
                        "each, and on the full problem past the sub-problem size (steps from products with the masks)"
                        if train_solver == "workingset" else
                        "fista with anchored products (eq. 9: one operator per target, no shared columns)")
    return out


def _solve_spd(A: torch.Tensor, b: torch.Tensor) -> torch.Tensor | None:
    """A x = b for A [p, p] symmetric positive (semi-)definite: Cholesky (p³/3 flops), LU where
    A is numerically singular; None when neither gives a finite solution."""
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) == 0:
        x = torch.cholesky_solve(b[:, None], L)[:, 0]
    else:
        x, info = torch.linalg.solve_ex(A, b)
        if int(info) != 0:
            return None
    return x if bool(torch.isfinite(x).all()) else None


def _line_search(w: torch.Tensor, new: torch.Tensor, HSw: torch.Tensor, HSd: torch.Tensor, cS: torch.Tensor,
                 lam: float) -> float:
    """The step t ∈ (0, 1] along w → new (on S) with the lowest objective, among t = 1 and the
    points where a coefficient reaches zero (feature-sign search: the objective is a quadratic
    plus a piecewise-linear ℓ1 along the segment). HSw = H_SS w, HSd = H_SS (new − w)."""
    delta = new - w
    with torch.no_grad():
        bp = -w / delta
        cand = bp[(bp > 0) & (bp < 1) & torch.isfinite(bp)]
        if cand.numel() > 512:
            cand = cand.topk(512, largest=False).values
        t = torch.cat([cand, torch.ones(1, dtype=w.dtype, device=w.device)])
        b = delta @ (HSw - cS)
        c2 = delta @ HSd
        quad = b * t + 0.5 * c2 * t * t
        l1 = (w[None, :] + t[:, None] * delta[None, :]).abs().sum(1)
        return float(t[torch.argmin(quad + lam * l1)])


def newton_column(P: Problem, j: int, w: torch.Tensor, lam: float):
    """Feature-sign search (active-set Newton steps with a line search, so the objective never
    rises) for column j from w [d], in float64: (w, Hw) of the exact solution, or None when it
    did not settle within MAX_STEPS (or the support outgrew MAX_SUPPORT). Reads H_SS by `P.block`
    (else `P.columns`) and the gradient by `P.columns(idx, j)`, or by one `P.matvec` where H has no
    readable columns (data space)."""
    d = w.shape[0]
    c = P.C[:, j].double()
    w = w.double().clone()
    theta = torch.sign(w)
    for _ in range(MAX_STEPS):
        idx = theta.ne(0).nonzero().squeeze(1)
        if idx.numel() > MAX_SUPPORT:
            return None
        hw = torch.zeros(d, dtype=torch.float64, device=w.device)
        if idx.numel():
            # H_SS alone where the problem gathers blocks (|S|² entries); H[:, S] (d·|S|, in
            # float64) only for a full step's gradient: at d = 20,000 the columns' float64 copy
            # dominated steps whose line search stops at a breakpoint and solves again
            Hc = None if P.block is not None else P.columns(idx, j).double()      # H[:, S]  [d, |S|]
            HSS = Hc[idx] if Hc is not None else P.block(idx[None], torch.tensor([j], device=idx.device))[0].double()
            new = _solve_spd(HSS, c[idx] - lam * theta[idx])
            if new is None:
                return None
            wS = w[idx]
            t = _line_search(wS, new, HSS @ wS, HSS @ (new - wS), c[idx], lam)
            wS = wS + t * (new - wS) if t < 1 else new
            wS = torch.where(wS.abs() <= 1e-15 * wS.abs().max().clamp_min(1e-300), torch.zeros_like(wS), wS)
            w = torch.zeros(d, dtype=torch.float64, device=w.device)
            w[idx] = wS
            theta = torch.sign(w)
            if t < 1:              # a coefficient reached zero: it left S; solve again
                continue
            if Hc is not None or P.columns is not None:
                hw = (Hc if Hc is not None else P.columns(idx, j).double()) @ wS
            else:                  # data space: one product with the masks, no columns of H
                wt = w[:, None].to(torch.float64 if P.exact else P.C.dtype)
                hw = P.matvec(wt, torch.tensor([j], device=w.device))[:, 0].double()
        g = c - hw
        viol = (g.abs() - lam * (1 + 1e-9)).masked_fill(theta.ne(0), -1)
        if not bool((viol > 0).any()):
            return w, hw
        add = (viol > 0).nonzero().squeeze(1)
        if add.numel() > GROW:
            add = add[viol[add].topk(GROW).indices]
        theta[add] = torch.sign(g[add])
    return None


def newton_open(P: Problem, lam: torch.Tensor, sol: Solution, tol) -> None:
    """Feature-sign steps on the columns of `sol` still open, in place: a column takes the step's
    result when its duality gap (computed in float64) certifies it or improves on the iterate's.
    tol: one value or [n] (each column's own)."""
    tol = torch.as_tensor(tol, dtype=torch.float64).expand(sol.W.shape[1])
    for j in (~sol.converged).nonzero().squeeze(1).tolist():
        step = newton_column(P, j, sol.W[:, j], float(lam[j]))
        if step is None:
            continue
        w, hw = step
        _, gap, r2 = lasso_objective_gap(w[:, None], hw[:, None], P.C[:, j:j + 1].double(), P.s[j:j + 1].double(),
                                         lam[j:j + 1].double())
        rel = float(gap[0] / (0.5 * P.s[j].double()).clamp_min(1e-300))
        if rel <= float(tol[j]) or rel < float(sol.rel_gap[j]):
            sol.W[:, j], sol.HW[:, j], sol.r2[j] = w.to(sol.W.dtype), hw.to(sol.W.dtype), r2[0].to(sol.r2.dtype)
            sol.rel_gap[j], sol.converged[j] = rel, rel <= float(tol[j])


def lasso_activeset(P: Problem, lam: torch.Tensor, W0: torch.Tensor, tol: float = 1e-6,
                    max_iter: int = 1000) -> Solution:
    """FISTA, then Newton steps on the columns still open, then FISTA again on those the steps
    did not certify (within max_iter FISTA iterations in all). Where the block shares one Gram
    with a preconditioner (`P.factor`) and exact products, the steps are batched Newton–CG
    (`newton_cg`, after CG_AFTER iterations: it solves the dense end in 2–4 steps); else
    per-column feature-sign steps with direct solves (after FISTA_FIRST). Same Solution as
    `lasso_solve` (n_iter: FISTA iterations plus Newton steps)."""
    factor = P.factor() if (P.factor is not None and P.exact) else None
    first = CG_AFTER if factor is not None else FISTA_FIRST
    sol = lasso_solve(P, lam, W0, tol, min(max_iter, first))
    if not bool(sol.converged.all()):
        if factor is not None:
            o = (~sol.converged).nonzero().squeeze(1)
            step = newton_cg(P.take(o), lam[o], sol.W[:, o], tol, factor)
            better = step.rel_gap < sol.rel_gap[o]
            j = o[better]
            sol.W[:, j], sol.HW[:, j], sol.r2[j] = step.W[:, better], step.HW[:, better], step.r2[better]
            sol.rel_gap[j], sol.converged[j] = step.rel_gap[better], step.converged[better]
            sol.n_iter[j] += step.n_iter[better]
        newton_open(P, lam, sol, tol)         # what CG left open (singular H_SS when m < d): direct steps
    still = (~sol.converged).nonzero().squeeze(1)
    if still.numel() and max_iter > first:
        rest = lasso_solve(P.take(still), lam[still], sol.W[:, still], tol, max_iter - first)
        sol.W[:, still], sol.HW[:, still], sol.r2[still] = rest.W, rest.HW, rest.r2
        sol.rel_gap[still], sol.converged[still] = rest.rel_gap, rest.converged
        sol.n_iter[still] += rest.n_iter
    return sol
