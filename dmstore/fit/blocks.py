"""Blocks of targets solved together. Test targets share one Gram matrix (`GramBlock`, from
streamed sufficient statistics); train targets follow paper eq. 9 and exclude models whose mask
contains them, so each has its own row set (`RowBlock`, solved in data space:
H_j W = Xᵀ(E_j ⊙ (X w − μ_jᵀw)) / m_j with E_j the eligibility of each model for target j).

Both give, per group of models ('fit', 'val' or 'all' = fit + val): the centring (μ, ȳ), the
`Problem` (operator, C, s, L) of the solvers, the number of models, the validation MSE and the
difference-of-means weights."""
from __future__ import annotations

import numpy as np
import torch

from .gram import Accumulator, kernel_for
from .newton_cg import low_precision, preconditioner
from .operators import ValRows
from .solvers import Problem, gram_matvec, lipschitz_power
from .stats import Stats, center_gram_

VAL_GRAM_BYTES = 1 << 30   # the val models' Gram is kept explicit up to this size (d ≤ 16,384 in float32)
SUB_GATHER_BYTES = 256 << 20   # eq. 9 sub-Grams: the gathered rows of one group of columns (3 float copies)
LOW_COPY_BYTES = 1 << 30   # a bfloat16 copy of the Gram for the low-precision products (d ≤ 23,170)
LOW_MIN_D = 8192   # ... and only from this d: 0.4 % products cost FISTA iterations (+12 % along the path at
                   # d = 12,000, 1.5-4x on a cold start at d = 300), which pays only where the GEMM dominates


def gather_blocks(G: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """G[idx[b]][:, idx[b]] for every b: [k, p, p] for idx [k, p]."""
    return G[idx[:, :, None], idx[:, None, :]]


class GramBlock:
    """Test targets of one block, from streamed sufficient statistics: one centred float Gram
    of the fit models G_f [d, d] (shared by every block), the val models' packed rows, and
    [d, n] vectors. The fit + val problem's Gram,
        m_a G_a = m_f G_f + (X_v − μ_v)ᵀ(X_v − μ_v) + (m_f m_v / m_a) δδᵀ,   δ = μ_f − μ_v,
    is built once in place of the val models' Gram where that fits VAL_GRAM_BYTES (one product
    per iteration of the refit: 130 ms → ~70 ms at d = 12,000), else applied term by term from the
    val rows."""

    def __init__(self, S_fit: Stats, S_val: Stats, val: "ValRows | None", G: torch.Tensor, L_fit: float, dtype,
                 shared: dict | None = None):
        """shared: kept across the fit's blocks (the val models' Gram, the same for every block)."""
        self.shared = {} if shared is None else shared
        self.S = {"fit": S_fit, "val": S_val}
        self.has_val = S_val is not None and S_val.m > 0
        self.S["all"] = S_fit + S_val if self.has_val else S_fit
        self.G, self.L_fit, self.val, self.dtype = G, L_fit, val, dtype
        self.n = S_fit.xy.shape[1]
        self._all = None

    def center(self, group):
        mu, yb = self.S[group].means()
        return mu.to(self.dtype)[:, None], yb.to(self.dtype)

    def _val_gram(self, mu_v):
        """(X_v − μ_v)ᵀ(X_v − μ_v) [d, d] kept explicit when it fits VAL_GRAM_BYTES, else None (its
        columns and blocks are then computed from the val rows on each call); computed once per
        fit (`shared`): the val masks are the same for every block."""
        d = self.G.shape[0]
        if d * d * self.G.element_size() > VAL_GRAM_BYTES:
            return None
        if "val_gram" not in self.shared:
            if kernel_for(self.G.device, self.G.dtype) == "int8":
                # exact counts X_vᵀX_v (one int8 product), centred in float64: XᵀX − m μμᵀ
                acc = Accumulator(d, self.G.device, self.G.dtype, kernel="int8")
                for _, _, X in self.val.rows.chunks(torch.int8):
                    acc.add(X)
                out = center_gram_(acc.xx, self.S["val"].sx, self.S["val"].m, divide=False).to(self.G.dtype)
            else:
                out = torch.zeros_like(self.G)
                for _, _, X in self.val.rows.chunks():
                    Xc = X - mu_v
                    out.addmm_(Xc.T, Xc)
                symmetrize_(out)   # a GEMM's XᵀX need not be: `gram_matvec` reads rows for columns
            self.shared["val_gram"] = out
        return self.shared["val_gram"]

    def _all_matvec(self):
        if self._all is None:
            mf, mv = self.S["fit"].m, self.S["val"].m
            ma = mf + mv
            mu_v = (self.S["val"].sx / mv).to(self.dtype)
            delta = (self.S["fit"].sx / mf - self.S["val"].sx / mv).to(self.dtype)
            c = mf * mv / ma
            if "all_gram" not in self.shared and self._val_gram(mu_v) is not None:
                self.shared["all_gram"] = _all_gram_(self.shared.pop("val_gram"), self.G, delta, mf, mv)
            Ha = self.shared.get("all_gram")
            if Ha is not None:   # one explicit Gram of the fit + val models: one product per iteration
                mv_all = gram_matvec(Ha)
                columns_all, block_all = (lambda idx, j=None: Ha[:, idx]), (lambda idx, cols=None: gather_blocks(Ha, idx))
            else:                # too large for a second d × d matrix: the val rows' share on each call
                gm = gram_matvec(self.G)

                def mv_all(W, cols):
                    dl = delta.to(W.dtype)
                    return (mf * gm(W, cols) + self.val.gram_matvec(W, mu_v) + c * dl[:, None] * (dl @ W)) / ma

                def columns_all(idx, j=None):   # (m_f G + (X_v − μ_v)ᵀ(X_v − μ_v) + c δδᵀ)[:, idx] / m_a
                    v = self.val.gram_columns(idx, mu_v)
                    return (mf * self.G[:, idx] + v + c * torch.outer(delta, delta[idx])) / ma

                def block_all(idx, cols=None):             # the same, rows idx[b] and columns idx[b] for each b
                    d = delta[idx]
                    v = self.val.gram_blocks(idx, mu_v)
                    return (mf * gather_blocks(self.G, idx) + v + c * d[:, :, None] * d[:, None, :]) / ma
            L = float(lipschitz_power(mv_all, self.G.shape[0], 1, self.G[:, :1], iters=30)[0]) * 1.05
            self._all = (mv_all, L, columns_all, block_all)
        return self._all

    def factor(self):
        """(G_f + ε·I)⁻¹ (`newton_cg.preconditioner`), computed once per fit
        (`shared`) on first use; it preconditions the fit and the fit + val problems alike (H_all
        differs from G_f by the val models' share). None where the fit models are not more than the
        features: H is singular there, supports can outgrow its rank and CG directions are wild."""
        if "factor" not in self.shared:
            ok = self.S["fit"].m > self.G.shape[0]
            self.shared["factor"] = preconditioner(self.G, self.L_fit) if ok else None
        return self.shared["factor"]

    def problem(self, group) -> Problem:
        _, C, s = self.S[group].centered(gram=False)
        if group == "all" and self.has_val:
            mv, L, columns, block = self._all_matvec()
            plain = "all_gram" in self.shared
        else:
            G = self.G
            mv, L = gram_matvec(G), self.L_fit
            columns, block = (lambda idx, j=None: G[:, idx]), (lambda idx, cols=None: gather_blocks(G, idx))
            plain = True
        L_ = torch.full((self.n,), L, dtype=self.dtype, device=self.G.device)
        return Problem(mv, C.to(self.dtype), s.to(self.dtype), L_, columns, block, exact=True, factor=self.factor,
                       low=self.low() if plain else None)

    def low(self) -> torch.dtype | None:
        """The dtype of FISTA's difference products and CG's products with the Gram (`Problem.low`):
        bfloat16 where `low_precision` measures that GEMM the faster, d ≥ LOW_MIN_D, its copy of
        the Gram fits LOW_COPY_BYTES and the fit models outnumber the features, else None (float32).
        Where they do not, H is singular and FISTA on the full problem (working sets' fallback) is
        where rounding costs most iterations; the gain was measured only where they do."""
        d = self.G.shape[0]
        low = low_precision(self.G.device)["dtype"]
        ok = (low and self.dtype == torch.float32 and LOW_MIN_D <= d and 2 * d * d <= LOW_COPY_BYTES
              and self.S["fit"].m > d)
        return getattr(torch, low) if ok else None

    def n_models(self, group):
        return np.full(self.n, self.S[group].m)

    def val_mse(self, W, mu, yb):
        if not self.has_val:
            return None
        return self.val.mse(W, mu[:, 0], yb)

    def diff_means(self, group):
        S = self.S[group]
        n1 = S.sx[:, None]
        n0 = S.m - n1
        ok = (n1 > 0) & (n0 > 0)
        th = torch.where(ok, S.xy / n1.clamp_min(1) - (S.sy[None, :] - S.xy) / n0.clamp_min(1),
                         torch.zeros_like(S.xy))
        return th.to(self.dtype)


class RowBlock:
    """Targets of one block in data space: train targets (paper eq. 9, `exclude`) leave out the
    rows containing them; test targets (exclude=False: every row, E ≡ 1) take this form where fit
    models are not more than train examples (no d × d Gram). The masks stay packed (PackedRows);
    Y [m, n] holds this block's targets only."""

    def __init__(self, X: dict, Y: dict, target_ids: torch.Tensor, dtype, exclude: bool = True):
        self.dtype, self.exclude = dtype, exclude
        self.X = {"fit": X["fit"], "val": X["val"]}
        self.Y = {"fit": Y["fit"], "val": Y["val"]}
        if X["val"] is not None and X["val"].m:
            self.X["all"] = X["fit"].concat(X["val"])
            self.Y["all"] = torch.cat([Y["fit"], Y["val"]])
        else:
            self.X["all"], self.Y["all"] = X["fit"], Y["fit"]
        self.t = target_ids
        self.tn = target_ids.cpu().numpy()
        self.n = target_ids.numel()
        self._c = {}

    def _group(self, g):
        if g not in self._c:
            X, Y = self.X[g], self.Y[g]
            E = self._eligible(X)                                  # [m, n] eligibility
            m = E.sum(0).clamp_min(1)
            mu = X.rmatmul(E) / m
            yb = (E * Y).sum(0) / m
            Yc = E * (Y - yb)
            C = X.rmatmul(Yc) / m
            s = (Yc * Yc).sum(0) / m
            self._c[g] = (X, E, m, mu, yb, C, s)
        return self._c[g]

    def _eligible(self, X) -> torch.Tensor:
        """[m, n] 0/1: the rows each target's regression uses."""
        if self.exclude:
            return 1 - X.cols(self.tn)
        return torch.ones(X.m, self.n, dtype=self.dtype, device=self.t.device)

    def center(self, group):
        _, _, _, mu, yb, _, _ = self._group(group)
        return mu, yb

    def matvec(self, group):
        X, E, m, mu, _, _, _ = self._group(group)

        def mv(W, cols):
            shift = (mu[:, cols].to(W.dtype) * W).sum(0)
            Ec = E[:, cols]
            if not self.exclude:                                    # E ≡ 1: every row counts
                return X.normal_matvec(W, lambda lo, hi, R: R - shift) / m[cols]
            return X.normal_matvec(W, lambda lo, hi, R: (R - shift).mul_(Ec[lo:hi])) / m[cols]
        return mv

    def block(self, group):
        """`Problem.block` in data space: for idx [k, p] and columns cols [k] the sub-Grams
        H_j[S][:, S] = Σ_r E_jr (x_r,S − μ_j,S)(x_r,S − μ_j,S)ᵀ / m_j  [k, p, p] (j = cols[b], S = idx[b]),
        from the packed rows' bits of S alone: m·p² flops per column, no pass over all d. The counts
        Σ_r E_jr x_r,S x_r,Sᵀ are exact (int8 products with int32 sums where the rows are int8, 10×
        a float32 bmm at m = 9,000, p = 2,000; else float32, integers < 2²⁴); centred in float64 and rounded once
        (a float32 product of centred rows carries ~ε·√m error, and the sub-problem's optimum with it)."""
        X, E, m, mu, _, _, _ = self._group(group)

        def blk(idx, cols):
            k, p = idx.shape
            out = torch.empty(k, p, p, dtype=self.dtype, device=idx.device)
            if X.kernel == "int8":                  # one exact int8 product per set, its rows gathered as Xᵀ's
                for b in range(k):
                    j = int(cols[b])
                    N = X.count(idx[b], E[:, j] if self.exclude else None)       # float64 [p, p], in place below
                    mus = mu[idx[b], j].double()
                    out[b] = N.div_(float(m[j])).addr_(mus, mus, alpha=-1)
                return out
            step = max(1, SUB_GATHER_BYTES // max(3 * 4 * X.m * p, 1))   # columns whose gathered rows fit
            for lo in range(0, k, step):
                ii, cc = idx[lo:lo + step], cols[lo:lo + step]
                kk = ii.shape[0]
                Xs = X.cols(ii.reshape(-1).cpu().numpy()).reshape(X.m, kk, p).permute(1, 0, 2)   # [kk, m, p] 0/1
                Xe = Xs * E[:, cc].T[:, :, None] if self.exclude else Xs          # E ≡ 1 for test targets
                N = torch.bmm(Xe.transpose(1, 2), Xs).double()                   # exact counts (< 2²⁴)
                mj = m[cc].double()[:, None, None]
                mus = mu[ii, cc[:, None]].double()
                out[lo:lo + kk] = (N / mj - mus[:, :, None] * mus[:, None, :]).to(self.dtype)
            return out
        return blk

    def problem(self, group) -> Problem:
        X, E, m, mu, yb, C, s = self._group(group)
        mv = self.matvec(group)
        Lc = lambda: lipschitz_power(mv, X.d, self.n, C)   # noqa: E731  (20 passes: only where FISTA runs on all d)
        return Problem(mv, C, s, Lc, block=self.block(group), exact=True, cheap_blocks=True)

    def n_models(self, group):
        return self._group(group)[2].cpu().numpy().astype(np.int64)

    def val_mse(self, W, mu, yb):
        Xv, Yv = self.X["val"], self.Y["val"]
        if Xv is None or not Xv.m:
            return None
        Ev = self._eligible(Xv)
        pred = Xv.matmul(W) + (yb - (mu * W).sum(0))
        err = Ev * (Yv - pred)
        return (err * err).sum(0) / Ev.sum(0).clamp_min(1)

    def diff_means(self, group):
        X, E, m, _, _, _, _ = self._group(group)
        Y = self.Y[group]
        n1 = X.rmatmul(E)
        sxy = X.rmatmul(E * Y)
        sy = (E * Y).sum(0)
        n0 = m - n1
        ok = (n1 > 0) & (n0 > 0)
        return torch.where(ok, sxy / n1.clamp_min(1) - (sy - sxy) / n0.clamp_min(1), torch.zeros_like(sxy))


def _all_gram_(Gv: torch.Tensor, G: torch.Tensor, delta: torch.Tensor, mf: int, mv: int) -> torch.Tensor:
    """Gv ← (m_f G + Gv + (m_f m_v / m_a) δδᵀ) / m_a in place, a band of rows at a time in float64
    (each entry rounded once): the centred Gram of the fit + val models [d, d], where Gv is the
    val models' (X_v − μ_v)ᵀ(X_v − μ_v) and G the fit models' centred Gram over m_f."""
    d = G.shape[0]
    ma = mf + mv
    c = mf * mv / ma
    dl = delta.to(torch.float64)
    step = max(1, (8 << 20) // max(d, 1))
    for lo in range(0, d, step):
        hi = min(d, lo + step)
        blk = mf * G[lo:hi].to(torch.float64) + Gv[lo:hi].to(torch.float64) + c * torch.outer(dl[lo:hi], dl)
        Gv[lo:hi] = (blk / ma).to(Gv.dtype)
    return Gv


def symmetrize_(A: torch.Tensor) -> torch.Tensor:
    """A ← (A + Aᵀ)/2 in place, a band of rows at a time (≤ 64 MB of temporaries)."""
    d = A.shape[0]
    step = max(1, (16 << 20) // max(d, 1))
    for lo in range(0, d, step):
        hi = min(d, lo + step)
        avg = (A[lo:hi, lo:] + A[lo:, lo:hi].T) / 2
        A[lo:hi, lo:] = avg
        A[lo:, lo:hi] = avg.T
    return A
