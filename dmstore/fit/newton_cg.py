"""Batched Newton steps on each column's support, solved by preconditioned conjugate gradients:
the dense end of the λ path, where models are not ≫ features.

There the supports hold most features (at d = 4,000, m = 4,800: 95 % at λ = 10⁻³·λmax) and the
problem is the centred Gram's own conditioning (κ ≈ 450 at d/m = 0.83): FISTA needs thousands of
iterations, and a direct Newton step per column costs |S|³/3. Given the signs θ on the support S,
the LASSO optimum solves H_SS w_S = c_S − λθ_S. Every column shares H, so one inverse of
M = H + εI (by its Cholesky factor, d³ flops once per fit; ε = EPS·λmax(H): H of exactly-αd
masks is singular along the ones) preconditions every column's system: (M⁻¹)_SS differs from
H_SS⁻¹ by a term of rank |Z| = d − |S|, so conjugate gradients converge in few iterations where
the support is dense (measured at d = 4,000, κ(H_SS) = 380: 39 iterations against 201
unpreconditioned); columns whose support is below DENSE·d run plain CG (H_SS is well
conditioned there). One iteration is one
batched product with H plus, for the dense columns, one with M⁻¹: 4·d²·k flops.

Each step (feature-sign search, Lee et al. 2007, batched): the full gradient g = c − Hw in float64
(an exact product: `Problem.exact`) and the full duality gap certify columns; off-support features
violating |g_j| ≤ λ join S with the sign of g_j (at most GROW per step); the Newton direction Δ
solves H_SS Δ_S = (g − λθ)_S; the step t ∈ (0, 1] is the best of the breakpoints (a coefficient
reaching zero) and 1 by the exact objective along the segment, so the objective never rises.
The inner solves need not be exact: the next step's gradient is exact, so errors are corrected.

    sol = newton_cg(P, lam, W0, tol, factor)     # factor = preconditioner(G, L): M⁻¹, or None

M⁻¹ is applied in bfloat16 where that GEMM is the faster (`low_precision`: AMX CPUs, GPUs), and so
is H inside CG where the problem says so (`Problem.low`): CG only needs a direction. The trial
points' products are float64, and an accepted trial's product is the next step's certificate.
"""
from __future__ import annotations

import time

import torch

from .solvers import Problem, Solution, lasso_objective_gap

EPS = 1e-3          # M = H + EPS·λmax(H)·I
DENSE = 0.6         # supports above this share of d use the preconditioner
GROW = 256          # most violating features joining a support per step
MAX_STEPS = 30      # Newton steps (a straggler costs one column's CG; FISTA took 900 iterations for it)
CG_TOL = 3e-3       # relative residual of each inner solve (d = 12,000, m = 16,000: 1e-4 430 CG iterations, 71.3 s; 1e-3 329, 68.6 s; 3e-3 280, 62.6 s; 1e-2 247 and one more Newton step, 62.9 s)
DAMP = 1e-6         # H_SS + DAMP·λmax(H)·I: keeps directions bounded where H_SS is (numerically) singular
CG_ITER = 300
CANDIDATES = 256    # smallest breakpoints tried by the line search (with t = 1)
FACTOR_BYTES = 2 << 30   # no preconditioner past this size (d = 23,170 in float32; 3 such arrays at once)
PROBE = 2048             # `low_precision`'s GEMM
LOW_MARGIN = 1.5         # bfloat16 is chosen when this much faster than float32
_LOW: dict = {}

#: CG iterations and Newton steps taken (benchmarks read and reset it).
STATS = {"cg": 0, "steps": 0}


def low_precision(device) -> dict:
    """The dtype the preconditioner is applied in on `device`, measured once per device type:
    {'dtype': 'bfloat16' | None, 'float32_gflops', 'bfloat16_gflops'}. bfloat16 where its GEMM
    of a [PROBE, PROBE] matrix and [PROBE, 32] columns runs LOW_MARGIN× float32's (AMX or
    AVX512-BF16 CPUs, CUDA tensor cores; at d = 12,000 and 40 columns 20 ms against 68 ms on a
    2-core AMX Xeon): CG only needs an approximate M⁻¹, and the Newton step's exact line search
    keeps the objective from rising whatever the direction (d = 4,000: 809 CG iterations
    against 779 with the float32 inverse, 14.2 s against 17.2 s in all)."""
    kind = torch.device(device).type
    if kind in _LOW:
        return _LOW[kind]
    out = {"dtype": None, "float32_gflops": None, "bfloat16_gflops": None}
    try:
        g = torch.Generator().manual_seed(0)
        A = torch.rand(PROBE, PROBE, generator=g).to(device)
        B = torch.rand(PROBE, 32, generator=g).to(device)
        flops = 2 * PROBE * PROBE * 32
        sync = torch.cuda.synchronize if kind == "cuda" else (lambda: None)

        def best(a, b):
            a @ b
            sync()
            t = float("inf")
            for _ in range(5):
                t0 = time.perf_counter()
                a @ b
                sync()
                t = min(t, time.perf_counter() - t0)
            return t
        tf, tb = best(A, B), best(A.bfloat16(), B.bfloat16())
        out.update(float32_gflops=round(flops / tf / 1e9, 1), bfloat16_gflops=round(flops / tb / 1e9, 1))
        if tb * LOW_MARGIN < tf:
            out["dtype"] = "bfloat16"
    except RuntimeError:       # no bfloat16 GEMM on this device
        pass
    _LOW[kind] = out
    return out


def preconditioner(G: torch.Tensor, L: float) -> torch.Tensor | None:
    """(G + EPS·L·I)⁻¹ [d, d] (by its Cholesky factor, d³ flops once: applying it is then one
    GEMM, 3× faster here than a triangular solve pair), stored in bfloat16 where `low_precision`
    measures it the faster, else in G's dtype; None when it would exceed FACTOR_BYTES or the
    factorization fails."""
    d = G.shape[0]
    if d * d * G.element_size() > FACTOR_BYTES:
        return None
    M = G.clone()
    M.diagonal().add_(EPS * L)
    F, info = torch.linalg.cholesky_ex(M)
    del M
    if int(info) != 0:
        return None
    inv = torch.cholesky_inverse(F)
    del F
    low = low_precision(G.device)["dtype"]
    dtype = getattr(torch, low) if low and G.dtype == torch.float32 else inv.dtype
    # LAPACK's result is column-major; GEMM on it ran at half the speed of a row-major copy
    # (bfloat16, d = 12,000, 40 columns: 38.6 against 19.4 ms)
    return inv.to(dtype).contiguous()


def _pcg(P: Problem, cols: torch.Tensor, S: torch.Tensor, R: torch.Tensor, factor, dense: torch.Tensor):
    """Δ [d, k] with Δ_S ≈ (H_SS + μI)⁻¹ R_S per column (zero off S; μ = DAMP·L; orthogonal to the
    ones where S is every feature), in R's dtype; `dense` [k]: the columns preconditioned by the
    factor."""
    Sf = S.to(R.dtype)
    full = S.all(0)                          # support = every feature: H's null vector of ones (masks of
    mu = DAMP * P.L.to(R.dtype)              # exactly αd ones) is H_SS's; CG runs orthogonal to it

    def proj(V):
        if not bool(full.any()):
            return V
        return torch.where(full, V - V.mean(0, keepdim=True), V)

    low = P.low                              # H's products in bfloat16 where the problem says so

    def A(V):
        HV = P.matvec(V, cols) if low is None else P.matvec(V.to(low), cols).to(V.dtype)
        return proj(HV * Sf + mu * V)

    def Minv(Rr):
        if factor is None or not bool(dense.any()):
            return Rr
        Z = Rr.clone()
        j = dense.nonzero().squeeze(1)
        Z[:, j] = (factor @ Rr[:, j].to(factor.dtype)).to(R.dtype) * Sf[:, j]
        return Z

    X = torch.zeros_like(R)
    Rr = proj(R * Sf)
    Z = proj(Minv(Rr))
    Pd = Z.clone()
    rz = (Rr * Z).sum(0)
    target = (CG_TOL * Rr.norm(dim=0)) ** 2
    for _ in range(CG_ITER):
        rr = (Rr * Rr).sum(0)
        active = rr > target
        if not bool(active.any()):
            break
        AP = A(Pd)
        STATS["cg"] += 1
        den = (Pd * AP).sum(0)
        a = torch.where(active & (den > 0), rz / den.clamp_min(1e-300), torch.zeros_like(rz))
        X.add_(a * Pd)
        Rr.sub_(a * AP)
        Z = proj(Minv(Rr))
        rz_new = (Rr * Z).sum(0)
        b = torch.where(active, rz_new / rz.clamp_min(1e-300), torch.zeros_like(rz))
        Pd = Z + b * Pd
        rz = rz_new
    return X


def _step_length(w, delta, g, HD, lam):
    """t [k]: per column the best of t = 0, t = 1 and the CANDIDATES smallest breakpoints in
    (0, 1) by the objective along w + tΔ: −t·Δᵀg + ½t²·ΔᵀHΔ + λ‖w + tΔ‖₁ (float64; HD = HΔ)."""
    lin = -(delta * g).sum(0)
    quad = (delta * HD).sum(0)
    t_out = torch.ones(w.shape[1], dtype=w.dtype, device=w.device)
    for j in range(w.shape[1]):
        wj, dj = w[:, j], delta[:, j]
        nz = (wj != 0) & (dj != 0)
        bp = -wj[nz] / dj[nz]
        bp = bp[(bp > 0) & (bp < 1)]
        if bp.numel() > CANDIDATES:
            bp = bp.topk(CANDIDATES, largest=False).values
        t = torch.cat([torch.zeros(1, dtype=w.dtype, device=w.device), bp,
                       torch.ones(1, dtype=w.dtype, device=w.device)])      # t = 0: no step rather than a rise
        on = (wj != 0) | (dj != 0)
        l1 = (wj[on][None, :] + t[:, None] * dj[on][None, :]).abs().sum(1)
        f = lin[j] * t + 0.5 * quad[j] * t * t + lam[j] * l1
        t_out[j] = t[torch.argmin(f)]
    return t_out


def _step(P: Problem, W, HW, delta, g, C, s, lam, xi, dt):
    """(W, θ, HW, known) after the step along Δ (float64 [d, k]): orthant-wise (OWL-QN's projection) — the
    first of t = 1, ½, ¼, ⅛ whose point W + tΔ, with coefficients that left their orthant ξ set
    to zero, lowers the objective (each trial one float64 product); for columns where
    none does, the best breakpoint (`_step_length`, or no step), which cannot raise it. HW [d, k]:
    H·W of the new point (the trial's exact product) where known [k], else to be computed."""
    k = W.shape[1]
    cols = torch.arange(k, device=W.device)
    F0, _, _ = lasso_objective_gap(W, HW, C, s, lam)
    out = W.clone()
    HWout = torch.empty_like(HW)
    todo = torch.ones(k, dtype=torch.bool, device=W.device)
    for t in (1.0, 0.5, 0.25, 0.125):
        j = todo.nonzero().squeeze(1)
        Wt = W[:, j] + t * delta[:, j]
        Wt = Wt.masked_fill(torch.sign(Wt) != xi[:, j], 0.0)
        HWt = P.matvec(Wt, cols[j])                  # float64: a wild step must not look like a descent
        Ft, _, _ = lasso_objective_gap(Wt, HWt, C[:, j], s[j], lam[j])
        ok = Ft < F0[j]
        out[:, j[ok]], HWout[:, j[ok]] = Wt[:, ok], HWt[:, ok]
        todo[j[ok]] = False
        if not bool(todo.any()):
            break
    j = todo.nonzero().squeeze(1)
    if j.numel():
        HD = P.matvec(delta[:, j], cols[j])           # float64 (Δ can be wild where H_SS is singular)
        t = _step_length(W[:, j], delta[:, j], g[:, j], HD, lam[j])
        Wj = W[:, j] + t * delta[:, j]
        hit = (W[:, j] != 0) & (delta[:, j] != 0) & (
            (-W[:, j] / delta[:, j].where(delta[:, j] != 0, torch.ones_like(Wj)) - t).abs() <= 1e-12 * t)
        out[:, j] = Wj.masked_fill(hit, 0.0)                  # a coefficient that reached zero leaves S
    return out, torch.sign(out), HWout, ~todo


def newton_cg(P: Problem, lam: torch.Tensor, W0: torch.Tensor, tol, factor: torch.Tensor | None,
              max_steps: int = MAX_STEPS) -> Solution:
    """Feature-sign steps for every column (module doc) from W0 [d, n]; P must be `exact`.
    tol: one value or [n]. Same Solution as `solvers.lasso_solve` (n_iter: inner CG iterations are
    not counted; Newton steps are)."""
    d, n = W0.shape
    dev, dt = W0.device, W0.dtype
    f64 = torch.float64
    tol = torch.as_tensor(tol, dtype=f64, device=dev).expand(n).clone()
    out = Solution(W0.clone(), torch.zeros_like(W0), torch.full((n,), float("inf"), dtype=f64, device=dev),
                   torch.zeros(n, dtype=torch.int32, device=dev), torch.zeros(n, dtype=torch.bool, device=dev),
                   torch.zeros(n, dtype=dt, device=dev))
    cols = torch.arange(n, device=dev)
    W = W0.to(f64)
    C, s, lam = P.C.to(f64), P.s, lam.to(f64)
    scale = (0.5 * s.double()).clamp_min(1e-300)
    theta = torch.sign(W)
    HW = known = None
    for step in range(max_steps + 1):
        if known is None:
            HW = P.matvec(W, cols)                              # float64: the certificate's product
        elif not bool(known.all()):                             # a trial's exact product is reused
            j = (~known).nonzero().squeeze(1)
            HW[:, j] = P.matvec(W[:, j], cols[j])
        _, gap, r2 = lasso_objective_gap(W, HW, C, s, lam)
        rel = gap / scale
        done = (rel <= tol) | torch.tensor(step == max_steps, device=dev)
        if bool(done.any()):
            k = cols[done]
            out.W[:, k], out.HW[:, k], out.r2[k] = W[:, done].to(dt), HW[:, done].to(dt), r2[done].to(dt)
            out.rel_gap[k], out.converged[k], out.n_iter[k] = rel[done], rel[done] <= tol[done], step
            keep = ~done
            if not bool(keep.any()):
                break
            cols, W, HW, C, s, lam, scale, tol, theta = (cols[keep], W[:, keep], HW[:, keep], C[:, keep], s[keep],
                                                         lam[keep], scale[keep], tol[keep], theta[:, keep])
            known = None if known is None else known[keep]
        g = C - HW
        viol = (g.abs() - lam * (1 + 1e-9)).masked_fill(theta.ne(0), -1.0)
        nv = int((viol > 0).sum(0).max())
        if nv:
            top = viol.topk(min(nv, GROW), dim=0)
            add = torch.zeros_like(theta, dtype=torch.bool).scatter_(0, top.indices, top.values > 0)
            theta = torch.where(add, torch.sign(g), theta)
        S = theta.ne(0)
        dense = S.sum(0) > DENSE * d
        R = torch.where(S, g - lam * theta, torch.zeros_like(g))
        sub = P.take(cols)
        STATS["steps"] += 1
        delta = _pcg(sub, torch.arange(cols.numel(), device=dev), S, R.to(dt), factor, dense).to(f64)
        W, theta, HW, known = _step(sub, W, HW, delta, g, C, s, lam, theta, dt)
    return out
