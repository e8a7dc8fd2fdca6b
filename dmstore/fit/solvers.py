"""Batched solvers over many targets at once, in torch (CPU or CUDA, same code).

Every problem is given by a symmetric positive semi-definite operator `matvec(W, cols) = H W`
(H the centred Gram matrix divided by the number of models, possibly different per target
column), the linear term C [d, n] and s [n] = ‖y_c‖²/m. Then for target j

    LASSO:  min_w  ½ wᵀHw − c_jᵀw + ½ s_j + λ_j ‖w‖₁   ( = 1/(2m) ‖X_c w − y_c‖² + λ_j ‖w‖₁ )
    ridge:  min_w  ½ wᵀHw − c_jᵀw + ½ λ_j ‖w‖²

LASSO is solved by FISTA with function-value restarts and a backtracking-safe step, checked by the
duality gap at every iterate. H·W is the only expensive operation (one product per iteration):
the gradient at the extrapolated point is the same combination of H·W_k and H·W_{k-1}, so it is
never recomputed, and columns that converge leave the working set.

Precision (`Problem.exact`): a float32 product H·W carries a rounding error ~ε₃₂·|H||W|, and
FISTA's fixed point moves with it: on the centred Gram at d/m = 0.83 float32 iterates stall at a
relative gap of 5e-7 … 2e-6 (measured: the float64 gap of the stalled float32 iterate, not just
its evaluation), so a tolerance of 1e-6 ran every such column to the iteration cap. Where the
operator accepts float64 input, the iterates live in float64 and each product is taken of the
*difference* from an anchor, HW = H·W_a (a float64 product, every ANCHOR_EVERY iterations)
+ H·(W − W_a) (float32): the error follows |W − W_a| ≪ |W|. Measured at d = 4,000, m = 4,800,
20 targets, λ = 0.046·λmax: 176 iterations to 1e-6 against 1,000 (2 at the cap), 5.5× faster.
Where `Problem.low` names bfloat16 (its GEMM 4× float32's here: 25 against 96 ms at d = 12,000
and 40 columns), the difference products run in it, anchors come every LOW_ANCHOR_EVERY
iterations, and a column leaves only on an exact product (a new anchor whose float64 gap is the
certificate, at the cap too): at d = 12,000, m = 16,000 along a 10-λ path, 12 % more iterations
for a fit 1.6× faster (bench_solver).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

Matvec = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Floating-point operations spent in operator products (benchmarks read and reset it).
FLOPS = {"matvec": 0}
ANCHOR_EVERY = 50     # iterations between float64 anchor products (module doc)
LOW_ANCHOR_EVERY = 30  # the same where the difference products are in bfloat16 (`Problem.low`; module doc)
SPARSE_BELOW = 0.25   # gram_matvec reads only the active rows of G below this share of them
EXACT_COPY_BYTES = 4 << 30   # a float64 copy of a Gram up to this size serves the anchor products (d ≤ 23,170; d = 20,000, 40 columns: 274 ms against 1.25 s converting rows)
#: gram_matvec on its bfloat16 or float64 copy reads only the active rows below these shares of them
#: (d = 12,000, 40 columns, 10 % active: bfloat16 4.5 against 22 ms, float64 49 against 110 ms;
#: 20 %: 26 against 22 ms, 96 against 108 ms)
COPY_SPARSE_BELOW = {torch.bfloat16: 0.12, torch.float64: 0.15}


@dataclass
class Problem:
    """One block of targets: `matvec(W[d, k], cols[k]) → H W`; C [d, n]; s [n]; L [n] an upper
    bound of H's largest eigenvalue (per column); where H can be read (the active-set Newton steps
    need it), `columns(idx, j) → H_j[:, idx]` [d, len(idx)] for column j; where H can be read on
    index sets (the working sets need it), `block(idx, cols) → H_{cols[b]}[idx[b]][:, idx[b]]`
    [k, p, p] for idx [k, p] (k index sets of p features) of columns cols [k], else None.
    exact: `matvec` also takes float64 W and then computes in float64 (the solvers anchor their
    products on it: module doc).
    cheap_blocks: `block` costs far less than `matvec` on all d (eq. 9: a pass over the masks), so
    working sets may grow to the memory bound.
    factor: where every column shares one Gram, `factor() → ` a preconditioner of H, the inverse
    of H + εI (`newton_cg.preconditioner`, computed on first call), or None.
    low: a dtype `matvec` takes for the solvers' approximate products (anchored differences,
    CG directions), or None (float32)."""
    matvec: Matvec
    C: torch.Tensor
    s: torch.Tensor
    lipschitz: "torch.Tensor | Callable[[], torch.Tensor]"
    columns: Callable | None = None
    block: Callable | None = None
    exact: bool = False
    factor: Callable | None = None
    cheap_blocks: bool = False
    low: torch.dtype | None = None

    @property
    def L(self) -> torch.Tensor:
        """[n], computed on first use where given as a callable (eq. 9's power iteration costs 20
        passes over the masks, and working sets need it only when a column falls to the full problem)."""
        if callable(self.lipschitz):
            self.lipschitz = self.lipschitz()
        return self.lipschitz

    @property
    def n(self) -> int:
        return self.C.shape[1]

    def take(self, a: torch.Tensor) -> "Problem":
        """The problem of columns a [k] of this one."""
        cols = None if self.columns is None else (
            lambda idx, j=None: self.columns(idx, None if j is None else int(a[j])))
        block = None if self.block is None else (lambda idx, c: self.block(idx, a[c]))
        lip = (lambda: self.L[a]) if callable(self.lipschitz) else self.lipschitz[a]
        return Problem(lambda W, c: self.matvec(W, a[c]), self.C[:, a], self.s[a], lip, cols, block,
                       self.exact, self.factor, self.cheap_blocks, self.low)


def gram_matvec(G: torch.Tensor, sparse_below: float = SPARSE_BELOW) -> Matvec:
    """H W for a shared symmetric Gram matrix G [d, d]; where fewer than `sparse_below`·d rows
    of W are non-zero in any column (the early λ path), only G's rows of those features are read,
    ≤ 64 MB at a time: G[idx, :]ᵀ W[idx] (rows are contiguous: at d = 12,000 and 40 columns,
    20 % of the rows took 50 ms against 105 ms for the same columns and 77 ms for the whole
    product). A whole float32 product is taken as (WᵀG)ᵀ: oneDNN's float32 GEMM runs that
    orientation 15–30 % faster for few columns (d = 20,000, 20 columns: 127 against 160 ms;
    d = 9,000: 25 against 36 ms; the same at d = 4,000; float64's is 7 % slower: 127 against
    118 ms at d = 12,000, 40 columns); G is symmetric (counts centred with sx_i·sx_j, exact). W of another dtype than G (float64): where G in that dtype fits EXACT_COPY_BYTES,
    a copy is kept from the first such product (measured at d = 6,000, 40 columns: 0.20 s
    against 0.38 s converting, 0.07 s a float32 product), and always for bfloat16 (its result
    in bfloat16: `Problem.low`), read only on the active rows below COPY_SPARSE_BELOW; else G's
    rows are converted ≤ 64 MB at a time and the product is computed in W's dtype."""
    d = G.shape[0]
    step = max(256, (16 << 20) // max(d, 1))       # rows of G per gathered chunk (64 MB as float32)
    copy = {}

    def mv(W, cols):
        same = W.dtype == G.dtype
        active = W.ne(0).any(dim=1)
        na = int(active.sum())
        if na == 0:
            return torch.zeros_like(W)
        if not same and (d * d * W.element_size() <= EXACT_COPY_BYTES or W.dtype == torch.bfloat16):
            if W.dtype not in copy:
                copy[W.dtype] = G.to(W.dtype)
            H = copy[W.dtype]
            if na < COPY_SPARSE_BELOW.get(W.dtype, 0.0) * d:   # H's rows of the active features only
                FLOPS["matvec"] += 2 * d * na * W.shape[1]
                j = active.nonzero().squeeze(1)
                return (W.index_select(0, j).T @ H.index_select(0, j)).T.contiguous()
            FLOPS["matvec"] += 2 * d * d * W.shape[1]
            return H @ W
        sparse = na < sparse_below * d
        FLOPS["matvec"] += 2 * d * (na if sparse else d) * W.shape[1]
        if same and not sparse:   # G is symmetric: (WᵀG)ᵀ, float32's faster orientation (doc above)
            return (W.T @ G).T.contiguous() if G.dtype == torch.float32 else G @ W
        idx = active.nonzero().squeeze(1) if sparse else None
        out = torch.zeros_like(W)
        for lo in range(0, na if sparse else d, step):
            if idx is None:
                rows, w = G[lo:lo + step], W[lo:lo + step]
            else:
                j = idx[lo:lo + step]
                rows, w = G.index_select(0, j), W.index_select(0, j)
            out.addmm_(rows.T.to(W.dtype), w)
        return out
    return mv


def lipschitz_gram(G: torch.Tensor, iters: int = 50) -> float:
    """An upper estimate of G's largest eigenvalue: power iteration (+5 %), cheap next to one
    iteration of the solver; its step safeguard covers an underestimate."""
    g = torch.Generator(device="cpu").manual_seed(0)
    v = torch.randn(G.shape[0], 1, generator=g, dtype=torch.float64).to(G)
    for _ in range(iters):
        v = G @ v
        v = v / v.norm()
    return float((v.T @ (G @ v)).item()) * 1.05


def lipschitz_power(P_matvec: Matvec, d: int, n: int, like: torch.Tensor, iters: int = 20) -> torch.Tensor:
    """Per-column estimate of λmax(H_j) by batched power iteration (+10 %); the solver's
    safeguard doubles L for a column whose plain gradient step ever increases its objective."""
    g = torch.Generator(device="cpu").manual_seed(0)
    V = torch.randn(d, n, generator=g, dtype=torch.float64).to(like)
    cols = torch.arange(n, device=like.device)
    lam = torch.ones(n, dtype=like.dtype, device=like.device)
    for _ in range(iters):
        HV = P_matvec(V, cols)
        lam = (V * HV).sum(0) / (V * V).sum(0).clamp_min(1e-300)
        V = HV / HV.norm(dim=0).clamp_min(1e-300)
    return lam * 1.1


def soft_threshold(X: torch.Tensor, thr: torch.Tensor) -> torch.Tensor:
    return X - X.clamp(-thr, thr)


def lasso_objective_gap(W, HW, C, s, lam):
    """Primal objective F [k] and duality gap [k] at W given HW = H W (see module doc).
    Column sums run in the compute dtype (torch sums pairwise); the per-column algebra after
    them in float64, where ‖r‖² = s − 2cᵀw + wᵀHw cancels."""
    quad = (W * HW).sum(0).double()
    cw = (C * W).sum(0).double()
    s, lam = s.double(), lam.double()
    r2 = (s - 2 * cw + quad).clamp_min(0)        # ‖r‖²/m
    l1 = W.abs().sum(0).double()
    F = 0.5 * r2 + lam * l1
    dual = (C - HW).abs_().amax(0).double()       # ‖X_cᵀ r‖∞ / m
    const = torch.where(dual > lam, lam / dual.clamp_min(1e-300), torch.ones_like(dual))
    gap = 0.5 * r2 * (1 + const * const) + lam * l1 - const * (s - cw)
    return F, gap.clamp_min(0), r2.to(W.dtype)


@dataclass
class Solution:
    W: torch.Tensor       # [d, n]
    HW: torch.Tensor      # [d, n]
    rel_gap: torch.Tensor  # [n] gap / (½ s)
    n_iter: torch.Tensor  # [n]
    converged: torch.Tensor  # [n] bool
    r2: torch.Tensor      # [n] training MSE of the centred problem


def _anchor(P: Problem, W, cols, HW, HWp, C, s, lam):
    """A new anchor at W (float64): (W_a, H·W_a exact, HWp and HW moved by the same correction,
    and the objective, gap and r2 at W from the exact product)."""
    HWa = P.matvec(W, cols)
    return (W, HWa, HWp + (HWa - HW), HWa, *lasso_objective_gap(W, HWa, C, s, lam))


def lasso_solve(P: Problem, lam: torch.Tensor, W0: torch.Tensor, tol: float | torch.Tensor = 1e-6,
                max_iter: int = 1000) -> Solution:
    """FISTA for every column of the block at its own λ (lam [n]), warm-started at W0 [d, n].
    Stops a column when gap ≤ tol · ½ s_j (the null model's objective); tol: one value or [n].
    Where `P.exact` and W0 is not float64, the iterates are float64 and the products anchored
    (module doc); the Solution is in W0's dtype (its rounding moves the objective by ≤ 2ε₃₂ of
    ½ s, far below any tolerance the iterates can certify in float32)."""
    d, n = W0.shape
    dev, dt = W0.device, W0.dtype
    anchored = P.exact and dt != torch.float64
    wt = torch.float64 if anchored else dt                  # dtype of the iterates
    tol = torch.as_tensor(tol, dtype=torch.float64, device=dev).expand(n)
    cols = torch.arange(n, device=dev)
    W = W0.to(wt, copy=True)
    HW = P.matvec(W, cols)
    Wa, HWa = W, HW                                         # the anchor (anchored: H·W_a in float64)
    out = Solution(W0.clone(), HW.to(dt), torch.zeros(n, dtype=torch.float64, device=dev),
                   torch.zeros(n, dtype=torch.int32, device=dev), torch.zeros(n, dtype=torch.bool, device=dev),
                   torch.zeros(n, dtype=dt, device=dev))
    C, s, L, lam = P.C.to(wt), P.s, P.L.clone().to(wt), lam.to(wt)
    scale = (0.5 * s.double()).clamp_min(1e-300)
    F, gap, r2 = lasso_objective_gap(W, HW, C, s, lam)
    Wp, HWp = W, HW
    t = torch.ones(n, dtype=wt, device=dev)
    noise = 16 * torch.finfo(wt).eps               # rounding of F for iterates in their dtype
    low = P.low if anchored else None               # the difference products' dtype (module doc)
    every = LOW_ANCHOR_EVERY if low is not None else ANCHOR_EVERY
    it = since = 0                                  # since: iterations since the last exact product
    while True:
        rel = gap / scale
        done = rel <= tol
        if low is not None and since and (it >= max_iter or bool(done.any())):
            # a column leaves only on an exact product: a new anchor, whose gap is the certificate
            Wa, HWa, HWp, HW, F, gap, r2 = _anchor(P, W, cols, HW, HWp, C, s, lam)
            since = 0
            rel = gap / scale
            done = rel <= tol
        if it >= max_iter:
            done = torch.ones_like(done)
        if done.any():
            k = cols[done]
            out.W[:, k], out.HW[:, k] = W[:, done].to(dt), HW[:, done].to(dt)
            out.rel_gap[k], out.n_iter[k] = rel[done], it
            out.converged[k] = rel[done] <= tol[done]
            out.r2[k] = r2[done].to(dt)
            keep = ~done
            if not keep.any():
                return out
            cols, W, HW, Wp, HWp = cols[keep], W[:, keep], HW[:, keep], Wp[:, keep], HWp[:, keep]
            Wa, HWa = Wa[:, keep], HWa[:, keep]
            C, s, L, lam, t, scale, tol = C[:, keep], s[keep], L[keep], lam[keep], t[keep], scale[keep], tol[keep]
            F, gap, r2 = F[keep], gap[keep], r2[keep]
        it += 1
        since += 1
        if anchored and since >= every:             # a new anchor: H·W in float64 (its gap too)
            Wa, HWa, HWp, HW, F, gap, r2 = _anchor(P, W, cols, HW, HWp, C, s, lam)
            since = 0
        t_next = (1 + torch.sqrt(1 + 4 * t * t)) / 2
        beta = (t - 1) / t_next
        # Y = W + β(W − Wp); the gradient at Y is the same combination of H·W and H·Wp, minus C
        Z = torch.sub(W, Wp).mul_(beta).add_(W)
        Z.sub_(torch.sub(HW, HWp).mul_(beta).add_(HW).sub_(C).div_(L))
        Wn = soft_threshold(Z, lam / L)
        if anchored:
            HWn = HWa + P.matvec((Wn - Wa).to(low or dt), cols).to(wt)
        else:
            HWn = P.matvec(Wn, cols)
        Fn, gn, r2n = lasso_objective_gap(Wn, HWn, C, s, lam)
        up = Fn > F + noise * (F.abs() + scale)       # restart momentum
        if up.any():
            # a plain prox-gradient step that clearly went up: L is too small
            plain = up & (t == 1) & (Fn > F + 1e-3 * (F.abs() + scale))
            if plain.any():
                L = torch.where(plain, 2 * L, L)
                Wn[:, plain], HWn[:, plain] = W[:, plain], HW[:, plain]
                Fn, gn, r2n = torch.where(plain, F, Fn), torch.where(plain, gap, gn), torch.where(plain, r2, r2n)
            t_next = torch.where(up, torch.ones_like(t_next), t_next)   # restart momentum
        Wp, HWp, W, HW = W, HW, Wn, HWn
        F, gap, r2, t = Fn, gn, r2n, t_next


def cg_solve(P: Problem, shift: torch.Tensor, W0: torch.Tensor, tol: float | None = None,
             max_iter: int = 1000, null: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched conjugate gradients for (H + shift_j I) w_j = c_j (ridge; OLS when shift = 0).
    `null` [d, n]: a unit null vector of H per column (zero columns: none). Right-hand sides,
    residuals and iterates are kept orthogonal to it, so rounding (float32) cannot grow the
    solution along it: with W0 = 0 the result is the minimum-norm solution. `tol`: relative
    residual, default 1e-10 in float64 and 1e-6 in float32 (below that float32 only stalls).
    Returns (W, iterations)."""
    d, n = W0.shape
    if tol is None:
        tol = 1e-10 if W0.dtype == torch.float64 else 1e-6
    proj = (lambda A: A) if null is None else (lambda A: A - null * (null * A).sum(0))  # noqa: E731
    cols = torch.arange(n, device=W0.device)
    C = proj(P.C)
    W = proj(W0.clone())
    R = proj(C - P.matvec(W, cols) - shift * W)
    Pd = R.clone()
    rs = (R * R).sum(0)
    target = tol * tol * (C * C).sum(0).clamp_min(1e-300)
    it = 0
    while it < max_iter and bool((rs > target).any()):
        it += 1
        active = rs > target
        AP = proj(P.matvec(Pd, cols) + shift * Pd)
        denom = (Pd * AP).sum(0)
        a = torch.where(active & (denom > 0), rs / denom.clamp_min(1e-300), torch.zeros_like(rs))
        W = W + a * Pd
        R = R - a * AP
        rs_new = (R * R).sum(0)
        b = torch.where(active, rs_new / rs.clamp_min(1e-300), torch.zeros_like(rs))
        Pd = R + b * Pd
        rs = rs_new
    return proj(W), torch.tensor(it)


def ones_null(P: Problem, mu: torch.Tensor, rel: float = 1e-4) -> torch.Tensor:
    """[d, n]: per column, the unit vector of ones over the features that vary (0 < mu < 1, mu
    [d, n] or [d, 1]: each feature's mean over the column's models) when H has it as a null
    vector (masks of exactly αd ones: the intercept absorbs it), zeros elsewhere. Features that
    never vary have zero rows in H and are never touched by CG from zero."""
    d, n = P.C.shape
    u = ((mu > 0) & (mu < 1)).to(P.C.dtype).expand(d, n).clone()
    u = u / u.norm(dim=0).clamp_min(1e-300)
    Hu = P.matvec(u, torch.arange(n, device=P.C.device))
    is_null = Hu.norm(dim=0) <= rel * P.L.to(P.C.dtype)
    return u * is_null
