"""Working sets for the LASSO: solve each target on a few features, certify it on all of them.

Where models are not ≫ features, the full centred Gram H [d, d] is ill-conditioned
(κ ≈ ((1+√(d/m))/(1−√(d/m)))², ≈ 450 at d/m = 0.83) and one product with it costs 2·d²·n flops,
so FISTA on the full problem pays a large cost per iteration for many iterations. Each target's
solution is sparse: at each λ only its support and a few features near it matter. A working set
S_j of p_j features gives column j the sub-problem on H_{S_j S_j} [p_j, p_j]: its κ follows
p_j/m, not d/m, and one product costs 2·p_j². Different targets have different supports (their
union soon covers most features), so every column keeps its own set: the block's sub-problems are
one batched problem over padded index sets idx [k, p] (`Problem.block` gathers H's blocks
[k, p, p], grouped by set size so each group is padded only to its own widest set; padding rows
are zero, so padded coordinates stay zero). Train targets (eq. 9) have one H_j per target: their
blocks are counted from the masks' bits of each set (`RowBlock.block`, m·p² flops), while step 1
is a pass over all the masks. Per λ, celer and skglm's scheme, batched:

    1. g = c − H w on all d features (one product with H's columns on the supports) and the
       full duality gap; certified columns leave.
    2. S_j grows (it never shrinks within a λ, so the objective never rises) by the features
       ranked by |g_j| / λ: max(P0, 2·|support|) of them, those with |g_j| > λ/2.
    3. The sub-problems are solved to a quarter of the tolerance: FISTA (batched products with
       [k, p, p]), then feature-sign Newton steps on the columns still open (`activeset`).
    4. Back to 1. A column is reported converged only by the full problem's gap (step 1), the
       same certificate as every other solver.

A column whose set outgrows the sub-problem size (P_MIN below; the small-λ end, where the
support nears min(m, d)) is solved on the full problem (`activeset.lasso_activeset`: FISTA, then
feature-sign steps, in data space from blocks and products with the masks; warm-started where the
rounds left it). In data space FISTA alone ran such columns to the iteration cap (d = 20,000,
m = 5,000: 39 (target, λ) at the cap). Where blocks are
cheap next to a product on all d (`Problem.cheap_blocks`, eq. 9) only memory bounds the sets.

    sol = lasso_workingset(P, lam, W0, tol, max_iter)
"""
from __future__ import annotations

import torch

from .activeset import FISTA_FIRST, lasso_activeset, newton_open
from .solvers import Problem, Solution, lasso_objective_gap, lasso_solve

P0 = 32             # smallest working-set share of one column
P_MIN = 256         # sets up to max(P_MIN, min(SUB_SHARE·d/√k, √(SUB_BYTES/(4k)))) features, k the columns still open, are solved as
SUB_SHARE = 0.5     # sub-problems: beyond, the n padded blocks [n, p, p] cost more to read per iteration
SUB_BYTES = 1 << 30  # than H [d, d] itself (though far better conditioned), or more memory than SUB_BYTES
BLOCK_BYTES = 1 << 30   # the batched sub-Grams [k, p, p] of one round are gathered in groups of this size
MAX_OUTER = 30      # working-set rounds per λ


def grow(G: torch.Tensor, W: torch.Tensor, lam: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """bool [d, k]: per column, `old` ∪ its support ∪ the features not yet in with the largest
    |g_j|/λ (max(P0, 2·|support|) of them, only those with |g_j| > λ/2: further ones cannot
    enter soon), for the gradient G [d, k] (c − H w) at W [d, k]."""
    d, k = G.shape
    nz = W.ne(0)
    new = old | nz
    score = G.abs() / lam.clamp_min(1e-300)
    score[new] = -1.0
    take = torch.clamp(2 * nz.sum(0), min=P0).clamp(max=d)
    top = score.topk(int(take.max()), dim=0)
    keep = (torch.arange(top.values.shape[0], device=G.device)[:, None] < take[None, :]) & (top.values > 0.5)
    new.scatter_(0, top.indices, keep | new.gather(0, top.indices))
    return new


def padded(M: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(idx [k, p] long, valid [k, p] bool) of the sets M [d, k], padded with feature 0."""
    sizes = M.sum(0)
    p = max(int(sizes.max()), 1)
    order = torch.argsort((~M).to(torch.int8), dim=0, stable=True)[:p].T      # set members first
    valid = torch.arange(p, device=M.device)[None, :] < sizes[:, None]
    return torch.where(valid, order, torch.zeros_like(order)), valid


def batched_problem(P: Problem, idx: torch.Tensor, valid: torch.Tensor, o: torch.Tensor) -> Problem:
    """The sub-problems of columns o on their sets idx [k, p] as one Problem over [p, k]: column b
    in its own coordinates, H_b = H[idx[b]][:, idx[b]] with padding rows and columns zeroed."""
    k, p = idx.shape
    dt = P.C.dtype
    v = valid.to(dt)
    H = torch.zeros(k, p, p, dtype=dt, device=idx.device)
    for rows, pc in _size_groups(valid.sum(1), H.element_size()):
        H[rows, :pc, :pc] = P.block(idx[rows, :pc], o[rows])
    H.mul_(v[:, :, None]).mul_(v[:, None, :])
    C = P.C[:, o].gather(0, idx.T) * v.T                                     # [p, k]

    held = {}                   # H[cols] for the open columns (they only shrink): gathered once per size

    def mv(W, cols):                                                         # W [p, len(cols)]
        if cols.numel() not in held:
            held.clear()
            held[cols.numel()] = H if cols.numel() == k else H[cols]
        Hc = held[cols.numel()]
        if W.dtype != Hc.dtype:                                              # a float64 (anchor) product
            Hc = Hc.to(W.dtype)
        return torch.bmm(Hc, W.T.unsqueeze(2)).squeeze(2).T

    L = _lipschitz(H)
    return Problem(mv, C, P.s[o], L, lambda j_idx, j: H[j][:, j_idx], exact=True)


def _size_groups(sizes: torch.Tensor, item: int):
    """(rows [g] long, p_g) groups of the columns by set size (sizes [k]), each padded only to its
    own largest set: consecutive in size order, the largest ≤ 1.25× the smallest + 16, and
    g·p_g² items ≤ BLOCK_BYTES (one wide column no longer pads every other one's sub-Gram)."""
    order = torch.argsort(sizes)
    sz = sizes[order].tolist()
    lo, k = 0, len(sz)
    while lo < k:
        hi = lo + 1
        while hi < k and sz[hi] <= 1.25 * sz[lo] + 16 and (hi + 1 - lo) * sz[hi] ** 2 * item <= BLOCK_BYTES:
            hi += 1
        yield order[lo:hi], max(int(sz[hi - 1]), 1)
        lo = hi


def _lipschitz(H: torch.Tensor, iters: int = 30) -> torch.Tensor:
    """[k]: an upper estimate of each H[b]'s largest eigenvalue (power iteration, +5 %; the
    solver's safeguard doubles L if it is ever too small)."""
    g = torch.Generator(device="cpu").manual_seed(0)
    v = torch.randn(H.shape[0], H.shape[1], 1, generator=g, dtype=torch.float64).to(H)
    for _ in range(iters):
        v = torch.bmm(H, v)
        v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-300)
    lam = (v * torch.bmm(H, v)).sum((1, 2))
    return (lam * 1.05).clamp_min(1e-30)


def solve_sub(S: Problem, lam: torch.Tensor, W0: torch.Tensor, tol: torch.Tensor, max_iter: int) -> Solution:
    """FISTA on the batched sub-problems, then feature-sign steps on the columns still open
    (certified by their own gap in float64), as `activeset.lasso_activeset` does; tol [k]: each
    column's own tolerance (a column's result never depends on the others of its block)."""
    sol = lasso_solve(S, lam, W0, tol, min(max_iter, FISTA_FIRST))
    if not bool(sol.converged.all()):
        newton_open(S, lam, sol, tol)
    return sol


def lasso_workingset(P: Problem, lam: torch.Tensor, W0: torch.Tensor, tol: float = 1e-6,
                     max_iter: int = 1000) -> Solution:
    """The LASSO for every column of the block at its own λ (lam [n]), warm-started at W0 [d, n],
    by per-column working sets (module doc). n_iter: inner iterations summed over rounds. Same
    Solution as `lasso_solve`."""
    d, n = W0.shape
    dev, dt = W0.device, W0.dtype
    lam = lam.to(dt)
    W = W0.clone()
    xt = torch.float64 if P.exact else dt        # the full problem's certificate: float64 products where exact
    HW = P.matvec(W.to(xt), torch.arange(n, device=dev))
    _, gap, r2 = lasso_objective_gap(W.to(xt), HW, P.C.to(xt), P.s, lam.to(xt))
    scale = (0.5 * P.s.double()).clamp_min(1e-300)
    rel = gap / scale
    n_iter = torch.zeros(n, dtype=torch.int32, device=dev)
    M = W.ne(0)
    sub_tol = torch.full((n,), tol / 4, dtype=torch.float64, device=dev)
    full = torch.zeros(n, dtype=torch.bool, device=dev)     # left to the full problem
    for _ in range(MAX_OUTER):
        o = ((rel > tol) & ~full).nonzero().squeeze(1)
        if not o.numel():
            break
        new = grow((P.C[:, o] - HW[:, o]).to(dt), W[:, o], lam[o], M[:, o])
        same = new.sum(0) == M[:, o].sum(0)                  # nothing new: solve its sub-problem closer
        sub_tol[o[same]] /= 8
        M[:, o] = new
        k = o.numel()           # the open columns' [k, p, p] sub-Grams bound their sets (not the whole block's)
        if P.cheap_blocks:      # only memory, where blocks are cheap next to a product on all d
            p_max = max(P_MIN, int((SUB_BYTES / (4 * k)) ** 0.5))
        else:
            p_max = max(P_MIN, int(min(SUB_SHARE * d / k ** 0.5, (SUB_BYTES / (4 * k)) ** 0.5)))
        full[o[(new.sum(0) > p_max) | (sub_tol[o] < tol * 1e-4)]] = True
        o = ((rel > tol) & ~full).nonzero().squeeze(1)
        if not o.numel():
            break
        idx, valid = padded(M[:, o])
        S = batched_problem(P, idx, valid, o)
        sol = solve_sub(S, lam[o], W[:, o].gather(0, idx.T) * valid.T.to(dt), sub_tol[o], max_iter)
        Wo = torch.zeros(d, o.numel(), dtype=dt, device=dev)
        Wo.scatter_add_(0, idx.T, sol.W * valid.T.to(dt))
        HWo = P.matvec(Wo.to(xt), o)
        W[:, o], HW[:, o] = Wo, HWo
        n_iter[o] += sol.n_iter
        _, g, r = lasso_objective_gap(Wo.to(xt), HWo, P.C[:, o].to(xt), P.s[o], lam[o].to(xt))
        gap[o], r2[o] = g, r
        rel = gap / scale
    rest = (rel > tol).nonzero().squeeze(1)          # left to the full problem, or still open after MAX_OUTER rounds
    if rest.numel():
        # FISTA then feature-sign steps (H_SS from columns or blocks, the gradient by a product);
        # FISTA alone where neither can be read
        solve = lasso_activeset if (P.columns is not None or P.block is not None) else lasso_solve
        sol = solve(P.take(rest), lam[rest], W[:, rest], tol, max_iter)
        W[:, rest], HW[:, rest], r2[rest] = sol.W, sol.HW.to(xt), sol.r2.to(r2.dtype)
        rel[rest], n_iter[rest] = sol.rel_gap, n_iter[rest] + sol.n_iter
    return Solution(W, HW.to(dt), rel, n_iter, rel <= tol, r2.to(dt))
