"""Datamodels for many targets at once: one regression per target example, all sharing the
store's mask matrix, written back as the `fit_runs`, `fits` and `weights` relations.

Objective (scikit-learn's convention), per target j, X the raw 0/1 masks of the models used:

    min_{w,b}  1/(2m) ‖X w + b − y_j‖² + λ ‖w‖₁          (lasso; ridge uses λ/2 ‖w‖²)

Weights and bias are reported in raw-mask coordinates (X is centred internally, never scaled).

Test targets share one Gram matrix, accumulated by streaming row chunks of the store (`stats`).
Train targets follow paper eq. 9: models whose mask contains the target are excluded from its
regression, so every train target has its own row set. That is solved exactly in data space:
H_j W = Xᵀ(E_j ⊙ (X w − μ_jᵀw)) / m_j with E_j the 0/1 eligibility of each model for target j —
two products with the mask matrix per iteration instead of one with the Gram matrix; the fit
rows of the mask matrix are held packed (1 bit per entry) and unpacked chunk by chunk inside
each product (PackedRows), so X costs m·d/8 bytes, not m·d·4.

λ is chosen per target by MSE on validation models (role 'val', or a seeded hash split of the
fit models when the store has none), then the target is refit on fit + val models at that λ,
as the paper's reference implementation does (appendix E.1).
"""
from __future__ import annotations

import datetime as _dt
import json
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from .writer import commit_fit
from . import __version__
from .errors import InputError, StoreError
from .solvers import Problem, cg_solve, ones_null, gram_matvec, lasso_solve, lipschitz_gram, lipschitz_power
from .stats import Stats, center_gram_, split_val
from .validate import check_alpha
from .progress import progress as progress_bar

ESTIMATORS = ("lasso", "ridge", "ols", "diff_means", "diff_means_correct")
PATH_ESTIMATORS = ("lasso", "ridge")


@dataclass
class FitResult:
    fit_id: int
    estimator: str
    n_targets: int
    n_fit: int
    n_val: int
    n_not_converged: int
    max_rel_gap: float
    wall_time_s: float
    device: str
    not_converged_targets: list
    reused: bool = False     # an identical earlier fit (`reuse=True`), not fitted again

    def summary(self) -> str:
        s = (f"fit {self.fit_id}: {self.estimator} on {self.n_targets} targets, {self.n_fit} fit + "
             f"{self.n_val} val models, {self.wall_time_s:.1f} s on {self.device}"
             + (" (reused: same settings and models)" if self.reused else ""))
        if self.n_not_converged:
            s += f"; {self.n_not_converged} (target, lambda) pairs hit the iteration cap"
        return s


def _same_fit(store, params: dict, n_fit: int, n_val: int) -> FitResult | None:
    """The newest stored fit with these settings on the same number of fit and val models
    (`fit(..., reuse=True)` returns it instead of fitting again), or None."""
    runs = store.fit_runs().to_pylist()
    want = json.dumps(params, sort_keys=True)
    for r in sorted(runs, key=lambda r: -r["fit_id"]):
        if r["params"] == want and r["n_fit"] == n_fit and r["n_val"] == n_val:
            return FitResult(r["fit_id"], r["estimator"], r["n_targets"], n_fit, n_val, r["n_not_converged"],
                             r["max_rel_gap"] or 0.0, r["wall_time_s"], r["device"], [], reused=True)
    return None


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    if device not in ("cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


# ----------------------------------------------------------------------------- block data
ROW_CACHE_BYTES = 512 << 20   # mask rows below this (as floats) stay unpacked between products
CHUNK_BYTES = 64 << 20        # else each product unpacks chunks of rows of this size (as float32)


class PackedRows:
    """0/1 model rows as packed bits (uint8 [m, ⌈d/8⌉], 1 bit per entry): products unpack ≤ 64 MB
    of rows at a time, so memory does not grow with m·d·4 (rows that fit in ROW_CACHE_BYTES as
    floats are unpacked once instead)."""

    def __init__(self, packed: np.ndarray, d: int, dev, dt):
        self.packed, self.d, self.dev, self.dt = packed, d, dev, dt
        self.m = packed.shape[0]
        self.step = int(max(1, CHUNK_BYTES // (4 * max(d, 1))))
        size = 4 if dt == torch.float32 else 8
        self._whole = self._unpack(0, self.m) if self.m * d * size <= ROW_CACHE_BYTES else None

    def _unpack(self, lo, hi):
        return torch.as_tensor(np.unpackbits(self.packed[lo:hi], axis=1, count=self.d)).to(self.dev, self.dt)

    def concat(self, other: "PackedRows") -> "PackedRows":
        return PackedRows(np.concatenate([self.packed, other.packed]), self.d, self.dev, self.dt)

    def chunks(self):
        """(lo, hi, X [rows, d]) in the compute dtype."""
        if self._whole is not None:
            yield 0, self.m, self._whole
            return
        for lo in range(0, self.m, self.step):
            hi = min(self.m, lo + self.step)
            yield lo, hi, self._unpack(lo, hi)

    def cols(self, t: np.ndarray) -> torch.Tensor:
        """X[:, t]  [m, len(t)] in the compute dtype, read from the packed bits."""
        bits = (self.packed[:, t // 8] >> (7 - t % 8).astype(np.uint8)) & 1
        return torch.as_tensor(bits).to(self.dev, self.dt)

    def matmul(self, W: torch.Tensor) -> torch.Tensor:
        """X W  [m, n]."""
        out = torch.empty(self.m, W.shape[1], dtype=W.dtype, device=W.device)
        for lo, hi, X in self.chunks():
            torch.matmul(X, W, out=out[lo:hi])
        return out

    def rmatmul(self, R: torch.Tensor) -> torch.Tensor:
        """Xᵀ R  [d, n]."""
        out = torch.zeros(self.d, R.shape[1], dtype=R.dtype, device=R.device)
        for lo, hi, X in self.chunks():
            out.addmm_(X.T, R[lo:hi])
        return out

    def normal_matvec(self, W: torch.Tensor, f) -> torch.Tensor:
        """Xᵀ f(lo, hi, X W) [d, n], one unpacking of each row chunk."""
        out = torch.zeros(self.d, W.shape[1], dtype=W.dtype, device=W.device)
        for lo, hi, X in self.chunks():
            out.addmm_(X.T, f(lo, hi, X @ W))
        return out


class ValRows:
    """The validation models of a block: masks packed (PackedRows) and margins Y [m_v, n]."""

    def __init__(self, rows: "PackedRows", Y: torch.Tensor):
        self.rows, self.Y, self.m = rows, Y, rows.m

    def gram_matvec(self, W: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """(X − μ)ᵀ (X − μ) W  [d, n]."""
        out = torch.zeros_like(W)
        for _, _, X in self.rows.chunks():
            Xc = X - mu
            out.addmm_(Xc.T, Xc @ W)
        return out

    def mse(self, W: torch.Tensor, mu: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """Mean over the rows of (y − ȳ − (x − μ)ᵀw)², per column [n]."""
        tot = torch.zeros(W.shape[1], dtype=W.dtype, device=W.device)
        for lo, hi, X in self.rows.chunks():
            err = (self.Y[lo:hi] - yb) - (X - mu) @ W
            tot += (err * err).sum(0)
        return tot / max(self.m, 1)


class GramBlock:
    """Test targets of one block, from streamed sufficient statistics: one centred float Gram
    of the fit models G_f [d, d] (shared by every block), the val models' packed rows, and
    [d, n] vectors. The fit + val problem needs no second Gram:
        m_a G_a = m_f G_f + (X_v − μ_v)ᵀ(X_v − μ_v) + (m_f m_v / m_a) δδᵀ,   δ = μ_f − μ_v."""

    def __init__(self, S_fit: Stats, S_val: Stats, val: "ValRows | None", G: torch.Tensor, L_fit: float, dtype):
        self.S = {"fit": S_fit, "val": S_val}
        self.has_val = S_val is not None and S_val.m > 0
        self.S["all"] = S_fit + S_val if self.has_val else S_fit
        self.G, self.L_fit, self.val, self.dtype = G, L_fit, val, dtype
        self.n = S_fit.xy.shape[1]
        self._all = None

    def center(self, group):
        mu, yb = self.S[group].means()
        return mu.to(self.dtype)[:, None], yb.to(self.dtype)

    def _all_matvec(self):
        if self._all is None:
            mf, mv = self.S["fit"].m, self.S["val"].m
            ma = mf + mv
            mu_v = (self.S["val"].sx / mv).to(self.dtype)
            delta = (self.S["fit"].sx / mf - self.S["val"].sx / mv).to(self.dtype)
            c = mf * mv / ma
            gm = gram_matvec(self.G)

            def mv_all(W, cols):
                return (mf * gm(W, cols) + self.val.gram_matvec(W, mu_v) + c * delta[:, None] * (delta @ W)) / ma
            L = float(lipschitz_power(mv_all, self.G.shape[0], 1, self.G[:, :1], iters=30)[0]) * 1.05
            self._all = (mv_all, L)
        return self._all

    def problem(self, group) -> Problem:
        _, C, s = self.S[group].centered(gram=False)
        if group == "all" and self.has_val:
            mv, L = self._all_matvec()
        else:
            mv, L = gram_matvec(self.G), self.L_fit
        L_ = torch.full((self.n,), L, dtype=self.dtype, device=self.G.device)
        return Problem(mv, C.to(self.dtype), s.to(self.dtype), L_)

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
    """Train targets of one block (paper eq. 9): rows containing the target are excluded. The
    masks stay packed (PackedRows); Y [m, n] holds this block's targets only."""

    def __init__(self, X: dict, Y: dict, target_ids: torch.Tensor, dtype):
        self.dtype = dtype
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
            E = 1 - X.cols(self.tn)                                # [m, n] eligibility
            m = E.sum(0).clamp_min(1)
            mu = X.rmatmul(E) / m
            yb = (E * Y).sum(0) / m
            Yc = E * (Y - yb)
            C = X.rmatmul(Yc) / m
            s = (Yc * Yc).sum(0) / m
            self._c[g] = (X, E, m, mu, yb, C, s)
        return self._c[g]

    def center(self, group):
        _, _, _, mu, yb, _, _ = self._group(group)
        return mu, yb

    def matvec(self, group):
        X, E, m, mu, _, _, _ = self._group(group)

        def mv(W, cols):
            shift = (mu[:, cols] * W).sum(0)
            Ec = E[:, cols]
            return X.normal_matvec(W, lambda lo, hi, R: (R - shift).mul_(Ec[lo:hi])) / m[cols]
        return mv

    def problem(self, group) -> Problem:
        X, E, m, mu, yb, C, s = self._group(group)
        mv = self.matvec(group)
        Lc = lipschitz_power(mv, X.d, self.n, C)
        return Problem(mv, C, s, Lc)

    def n_models(self, group):
        return self._group(group)[2].cpu().numpy().astype(np.int64)

    def val_mse(self, W, mu, yb):
        Xv, Yv = self.X["val"], self.Y["val"]
        if Xv is None or not Xv.m:
            return None
        Ev = 1 - Xv.cols(self.tn)
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


# ----------------------------------------------------------------------------- estimators
def _train_mse(P: Problem, W):
    cols = torch.arange(W.shape[1], device=W.device)
    HW = P.matvec(W, cols)
    return (P.s - 2 * (P.C * W).sum(0) + (W * HW).sum(0)).clamp_min(0)


def _solve_at(est, P: Problem, lam, W0, opts):
    """(W, train MSE, relative gap, iterations, converged) of lasso or ridge at per-target λ."""
    if est == "lasso":
        sol = lasso_solve(P, lam, W0, opts["tol"], opts["max_iter"])
        return sol.W, sol.r2, sol.rel_gap, sol.n_iter, sol.converged
    n = P.n
    W, it = cg_solve(P, lam, W0, max_iter=opts["max_iter"])
    return W, _train_mse(P, W), torch.zeros(n), torch.full((n,), int(it)), torch.ones(n, dtype=torch.bool)


def _solve_block(block, est, opts, bar):
    """Fit one block of targets. Returns (rows: list of per-λ dicts of arrays [n],
    weights: list of (lam [n], W [d, n]) to write)."""
    n = block.n
    rows, weights = [], []
    if est in PATH_ESTIMATORS:
        P = block.problem("fit")
        mu, yb = block.center("fit")
        K = opts["n_lambdas"]
        ratios = opts["lambda_min_ratio"] ** np.linspace(0, 1, K)
        if est == "lasso":  # the smallest λ with w = 0
            lam_max = P.C.abs().amax(0).clamp_min(1e-12)
        else:  # ridge: from 10·λmax(H) down
            lam_max = 10 * P.L.clone()
        W = torch.zeros_like(P.C)
        best_mse = torch.full((n,), float("inf"), dtype=P.C.dtype, device=P.C.device)
        best_k = torch.zeros(n, dtype=torch.long, device=P.C.device)
        W_best = torch.zeros_like(P.C)
        path = []
        for k, r in enumerate(ratios):
            lam = lam_max * float(r)
            W, r2, gap, nit, conv = _solve_at(est, P, lam, W, opts)
            vm = block.val_mse(W, mu, yb)
            if vm is None:
                raise InputError("no validation models: add models with role 'val' or raise val_fraction")
            better = vm < best_mse
            best_mse = torch.where(better, vm, best_mse)
            best_k = torch.where(better, torch.full_like(best_k, k), best_k)
            W_best[:, better] = W[:, better]
            path.append(dict(lam=lam, bias=yb - (mu * W).sum(0), train_mse=r2, val_mse=vm,
                             nnz=(W != 0).sum(0), rel_gap=gap, n_iter=nit, converged=conv))
            if opts["keep_path"]:
                weights.append((lam, W.clone(), k))
            bar.update(1)
        # refit on fit + val models at each target's selected λ
        Pa = block.problem("all")
        mua, yba = block.center("all")
        lam_sel = lam_max * torch.as_tensor(ratios, dtype=P.C.dtype, device=P.C.device)[best_k]
        Wf, r2f, gapf, nitf, convf = _solve_at(est, Pa, lam_sel, W_best, opts)
        n_fit, n_all = block.n_models("fit"), block.n_models("all")
        bk = best_k.cpu().numpy()
        for k, p in enumerate(path):
            sel = bk == k
            row = {key: _np(v) for key, v in p.items()}
            row["selected"] = sel
            row["n_models"] = n_fit.copy()
            row["n_models"][sel] = n_all[sel]
            for key, v in dict(bias=yba - (mua * Wf).sum(0), train_mse=r2f, nnz=(Wf != 0).sum(0),
                               rel_gap=gapf, n_iter=nitf, converged=convf).items():
                row[key] = np.where(sel, _np(v), row[key])
            rows.append(row)
        weights.append((lam_sel, Wf, -1))
        return rows, weights, bk
    # single-solution estimators on fit + val models
    Pa = block.problem("all")
    mua, yba = block.center("all")
    if est == "ols":
        Wf, it = cg_solve(Pa, torch.zeros(n, dtype=Pa.C.dtype, device=Pa.C.device), torch.zeros_like(Pa.C),
                          max_iter=opts["max_iter"], null=ones_null(Pa, mua))
        nit = torch.full((n,), int(it))
    else:  # diff_means, diff_means_correct
        Wf = block.diff_means("all")
        nit = torch.zeros(n)
    zero = torch.zeros(n, dtype=Pa.C.dtype)
    rows.append(dict(lam=zero, bias=yba - (mua * Wf).sum(0), train_mse=_train_mse(Pa, Wf),
                     val_mse=torch.full((n,), float("nan")), nnz=(Wf != 0).sum(0), rel_gap=zero,
                     n_iter=nit, converged=torch.ones(n, dtype=torch.bool)))
    rows[0] = {k: _np(v) for k, v in rows[0].items()}
    rows[0]["selected"] = np.ones(n, bool)
    rows[0]["n_models"] = block.n_models("all")
    bar.update(1)
    return rows, [(zero, Wf, -1)], np.zeros(n, np.int64)


def _np(v):
    return v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)


# ----------------------------------------------------------------------------- the pipeline
def fit(store, experiment: str, alpha: float, estimator: str = "lasso", targets="test",
        n_lambdas: int = 30, lambda_min_ratio: float = 1e-3, device: str = "auto",
        dtype: str = "float32", keep_path: bool = False, tol: float = 1e-6, max_iter: int = 1000,
        val_fraction: float = 0.1, seed: int = 0, block_size: int | None = None,
        progress: bool | None = None, reuse: bool = False, shard: tuple[int, int] | None = None,
        run: str | None = None) -> FitResult:
    """Fit datamodels for `targets` ('test' | 'train' | 'all' | ids) of (experiment, alpha) and
    write them into the store. See the module docstring for the objective and the procedure.
    `shard` = (K, N) with `run` = NAME fits the K-th of N shares of the targets as part of the one
    fit (one fit_id) that run NAME's N shards form together (see `dmstore.sharding`); a shard
    already committed is not fitted again."""
    t0 = time.time()
    store._require_writable()
    if estimator not in ESTIMATORS:
        raise InputError(f"--estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
    if dtype not in ("float32", "float64"):
        raise InputError(f"--dtype must be float32 or float64, got {dtype!r}")
    if not (n_lambdas >= 1 and 0 < lambda_min_ratio < 1):
        raise InputError("--lambdas must be >= 1 and --lambda-min-ratio in (0, 1)")
    if not (0 < tol < 1) or max_iter < 1:
        raise InputError("tol must be in (0, 1) and max_iter >= 1")
    if not 0 < val_fraction < 1:
        raise InputError(f"--val-fraction must be in (0, 1), got {val_fraction}")
    alpha = check_alpha(alpha)
    dev = resolve_device(device)
    dt = torch.float32 if dtype == "float32" else torch.float64
    if (shard is None) != (run is None):
        raise InputError("--shard K/N and --run NAME go together: name the run the N shards form")
    if shard is not None and not 0 <= shard[0] < shard[1]:
        raise InputError(f"--shard {shard[0]}/{shard[1]}: K/N needs 0 <= K < N")
    store = store.pinned()   # every read of this fit sees one version of the store
    tids = store.resolve_targets(targets)
    d = store.d
    test_t, train_t = tids[tids >= d], tids[tids < d]

    models = store.models(experiment, alpha, ["fit", "val"], ["model_id", "role"])
    if models.num_rows == 0:
        store._require_models(experiment, alpha, ["fit", "val"])
    ids = models["model_id"].to_numpy()
    roles = np.asarray(models["role"].to_pylist())
    if (roles == "val").any():
        val_ids, val_source = ids[roles == "val"], "role"
    else:
        val_ids, val_source = ids[split_val(ids, val_fraction, seed)], "split"
    val_ids = np.unique(val_ids)
    n_val, n_fit = int(val_ids.size), int(ids.size - val_ids.size)
    if n_fit < 2:
        raise InputError(f"only {n_fit} fit models for {experiment!r} at alpha {alpha}; need more")
    params = dict(experiment=experiment, alpha=alpha, estimator=estimator, targets=str(targets) if
                  isinstance(targets, str) else [int(x) for x in tids], n_lambdas=n_lambdas,
                  lambda_min_ratio=lambda_min_ratio, tol=tol, max_iter=max_iter, dtype=dtype,
                  device=device, keep_path=keep_path, val_fraction=val_fraction, seed=seed,
                  block_size=block_size, dmstore=__version__)
    rec = None
    if run is not None:
        from . import sharding
        rec = sharding.open_run(store, run, params, shard[1])
        if rec["version"] != store.as_of:   # every shard reads the version the run started at
            from . import log
            gone = log.snapshot(store.root, rec["version"]).missing_files()
            if gone:
                raise StoreError(f"run {run!r} reads store version {rec['version']}, but {len(gone)} of its files "
                                 f"were deleted since (by vacuum, or by hand), e.g. {gone[0]}; its remaining shards "
                                 f"cannot fit the same data. Start the run again under a new run name")
            return fit(store.pinned(rec["version"]), experiment, alpha, estimator, targets, n_lambdas,
                       lambda_min_ratio, device, dtype, keep_path, tol, max_iter, val_fraction, seed,
                       block_size, progress, False, shard, run)
        done = sharding._done(_latest(store), run)
        if shard[0] in done:
            return _shard_result(rec, done[shard[0]], estimator, n_fit, n_val)
        tids = sharding.shard_targets(tids, shard)
        test_t, train_t = tids[tids >= d], tids[tids < d]
    elif reuse:
        done = _same_fit(store, params, n_fit, n_val)
        if done is not None:
            return done

    opts = dict(n_lambdas=n_lambdas if estimator in PATH_ESTIMATORS else 1,
                lambda_min_ratio=lambda_min_ratio, tol=tol, max_iter=max_iter, keep_path=keep_path)
    correct = estimator == "diff_means_correct"
    if block_size is None:  # ~8 [d, block] working arrays within ~1 GiB
        block_size = int(max(64, min(16384, (1 << 30) // (8 * max(d, 1) * (4 if dt == torch.float32 else 8)))))
    test_blocks = [test_t[i:i + block_size] for i in range(0, test_t.size, block_size)]
    row_block = max(16, block_size // 4)
    train_blocks = [train_t[i:i + row_block] for i in range(0, train_t.size, row_block)]
    steps = (len(test_blocks) + len(train_blocks)) * opts["n_lambdas"]
    bar = progress_bar(total=steps, desc=f"fit {estimator}", unit="λ-block", enabled=progress)

    fit_rows, weight_parts, cache = [], [], {}
    for bi, block_t in enumerate(test_blocks):
        S_fit, S_val, val_rows, _ = _scan(store, experiment, alpha, block_t, None, val_ids, dev, dt,
                                          correct, need_gram=bi == 0)
        if S_fit.xx is not None:   # the one d×d matrix of the fit: centred in place, kept for every block
            cache["G"] = center_gram_(S_fit.xx, S_fit.sx, S_fit.m)
            cache["L"] = lipschitz_gram(cache["G"])
            S_fit.xx = None
        block = GramBlock(S_fit, S_val, val_rows, cache["G"], cache["L"], dt)
        rows, weights, _ = _solve_block(block, estimator, opts, bar)
        _collect(fit_rows, weight_parts, rows, weights, block_t)
        del block
    for block_t in train_blocks:   # eq. 9: packed masks + this block's margins, streamed per block
        _, _, _, (X, Y) = _scan(store, experiment, alpha, np.zeros(0, np.int32), block_t, val_ids, dev, dt,
                                correct, need_gram=False)
        block = RowBlock(X, Y, torch.as_tensor(block_t.astype(np.int64), device=dev), dt)
        rows, weights, _ = _solve_block(block, estimator, opts, bar)
        _collect(fit_rows, weight_parts, rows, weights, block_t)
        del block, X, Y
    bar.close()
    preds = _eval_predictions(store, experiment, alpha, fit_rows, weight_parts, dev, dt)
    result = _write(store, experiment, alpha, estimator, fit_rows, weight_parts, preds, rec, shard, dict(
        n_fit=n_fit, n_val=n_val, val_source=val_source, n_targets=int(tids.size),
        n_lambdas=opts["n_lambdas"], lambda_min_ratio=lambda_min_ratio if estimator in PATH_ESTIMATORS else None,
        tol=tol if estimator == "lasso" else None, max_iter=max_iter, dtype=dtype, device=str(dev),
        params=params), t0)
    if result.not_converged_targets:
        import warnings
        t = result.not_converged_targets
        warnings.warn(f"fit {result.fit_id}: {len(t)} target(s) hit the iteration cap ({max_iter}) at some "
                      f"lambda, e.g. {t[:10]}; they are marked converged = false in `fits`. Raise max_iter "
                      f"or tol, or lambda_min_ratio (small lambdas are slow when models are few)", stacklevel=2)
    return result


def _scan(store, experiment, alpha, gram_t, row_t, val_ids, dev, dt, correct, need_gram):
    """One streaming pass over the fit and val models: Stats (vectors; plus the raw Gram ΣxxT of
    the fit models in the compute dtype when `need_gram`) on `gram_t`, the val models' packed
    masks and margins (ValRows), and (when `row_t` is given) the packed masks (PackedRows) and Y
    of fit/val models for the eq. 9 solver. Row chunks stay ≤ 64 MB as floats."""
    d = store.d
    both = np.union1d(gram_t, row_t) if row_t is not None else gram_t
    gpos = np.searchsorted(both, gram_t)
    rpos = np.searchsorted(both, row_t) if row_t is not None else None
    S = {"fit": Stats.zeros(d, gram_t.size, dev, gram=need_gram, gram_dtype=dt),
         "val": Stats.zeros(d, gram_t.size, dev, gram=False)}
    Xs, Ys = {"fit": [], "val": []}, {"fit": [], "val": []}
    vpacked, vY = [], []
    max_rows = int(min(4096, max(256, (16 << 20) // max(d, 1))))
    for ch in store.iter_chunks(experiment, alpha, role=["fit", "val"], targets=both, max_rows=max_rows,
                                unpack=bool(gram_t.size)):   # eq. 9 rows stay packed as stored
        isval = np.isin(ch["model_ids"], val_ids, assume_unique=True)
        Yall = ch["margins"]
        if correct:
            Yall = (Yall > 0).astype(np.float32)
        for g, sel in (("fit", ~isval), ("val", isval)):
            if not sel.any():
                continue
            if gram_t.size:
                X = torch.as_tensor(ch["masks"][sel]).to(device=dev, dtype=dt)
                Yg = np.ascontiguousarray(Yall[sel][:, gpos])
                Y = torch.as_tensor(Yg).to(device=dev, dtype=dt)
                S[g].add(X, Y)
                if g == "val":
                    vpacked.append(ch["packed"][sel])
                    vY.append(Y)
                del X
            else:
                S[g].m += int(sel.sum())
            if row_t is not None:
                Xs[g].append(ch["packed"][sel])
                Ys[g].append(torch.as_tensor(np.ascontiguousarray(Yall[sel][:, rpos])).to(device=dev, dtype=dt))
    val = None
    if vpacked:
        val = ValRows(PackedRows(np.concatenate(vpacked), d, dev, dt), torch.cat(vY))
    rows = None
    if row_t is not None:
        cat = lambda xs, w: torch.cat(xs) if xs else torch.zeros(0, w, dtype=dt, device=dev)  # noqa: E731
        packed = lambda xs: PackedRows(np.concatenate(xs) if xs else np.zeros((0, (d + 7) // 8), np.uint8),  # noqa: E731
                                       d, dev, dt)
        rows = ({g: packed(Xs[g]) for g in Xs}, {g: cat(Ys[g], row_t.size) for g in Ys})
    return S["fit"], S["val"], val, rows


def _collect(fit_rows, weight_parts, rows, weights, block_t):
    for r in rows:
        r["target_id"] = block_t
        fit_rows.append(r)
    for lam, W, k in weights:
        Wc = _np(W).astype(np.float32)
        lam_np = _np(lam).astype(np.float64)
        tj, ti = np.nonzero(Wc.T)
        weight_parts.append((block_t[tj], lam_np[tj], ti.astype(np.int32), Wc[ti, tj], k))


def _eval_predictions(store, experiment, alpha, fit_rows, weight_parts, dev, dt) -> pa.Table | None:
    """Predictions of the selected datamodels for every eval model (mask · w + b), computed by
    blocks of targets against streamed chunks of eval masks. None when there are no eval models."""
    if not store.model_ids(experiment, alpha, "eval").size:
        return None
    tid = np.concatenate([r["target_id"][r["selected"]] for r in fit_rows])
    bias = np.concatenate([r["bias"][r["selected"]] for r in fit_rows])
    order = np.argsort(tid)
    tid, bias = tid[order], bias[order]
    sel = [p for p in weight_parts if p[4] == -1]
    wt = np.concatenate([p[0] for p in sel])
    wi = np.concatenate([p[2] for p in sel])
    wv = np.concatenate([p[3] for p in sel])
    d = store.d
    block = max(1, (256 << 20) // (4 * d))
    out = []
    for lo in range(0, tid.size, block):
        t_blk = tid[lo:lo + block]
        W = np.zeros((d, t_blk.size), np.float32)
        k = (wt >= t_blk[0]) & (wt <= t_blk[-1])
        W[wi[k], np.searchsorted(t_blk, wt[k])] = wv[k]
        Wt = torch.as_tensor(W).to(device=dev, dtype=dt)
        b = torch.as_tensor(bias[lo:lo + block]).to(device=dev, dtype=dt)
        for ch in store.iter_chunks(experiment, alpha, role="eval", with_margins=False):
            P = (torch.as_tensor(ch["masks"]).to(device=dev, dtype=dt) @ Wt + b).cpu().numpy()
            out.append((np.repeat(ch["model_ids"], t_blk.size), np.tile(t_blk, len(ch["model_ids"])),
                        P.astype(np.float32).ravel()))
    mid, t, pv = (np.concatenate(x) for x in zip(*out))
    o = np.lexsort((t, mid))
    return pa.table({"model_id": mid[o].astype(np.int64), "target_id": t[o].astype(np.int32),
                     "predicted": pv[o]})


def _latest(store):
    from . import log
    return log.snapshot(store.root)


def _shard_result(rec, entry, estimator, n_fit, n_val) -> FitResult:
    s = entry["stats"]
    return FitResult(rec["fit_id"], estimator, s["n_targets"], n_fit, n_val, s["n_not_converged"],
                     s["max_rel_gap"] or 0.0, s["wall_time_s"], s["device"], [], reused=True)


def _write(store, experiment, alpha, estimator, fit_rows, weight_parts, preds, rec, shard, run, t0) -> FitResult:
    cat = lambda k: np.concatenate([r[k] for r in fit_rows]) if fit_rows else np.zeros(0)  # noqa: E731
    fits = {k: cat(k) for k in ("target_id", "lam", "bias", "train_mse", "val_mse", "nnz", "selected",
                                "n_models", "rel_gap", "n_iter", "converged")}
    order = np.lexsort((-fits["lam"], fits["target_id"]))
    fits = {k: v[order] for k, v in fits.items()}
    # weights: the selected (refit) solution for every target; path solutions at other λ
    sel_t, sel_lam = fits["target_id"][fits["selected"]], fits["lam"][fits["selected"]]
    o = np.argsort(sel_t)
    sel_t, sel_lam = sel_t[o], sel_lam[o]
    wt = [p for p in weight_parts if p[4] == -1]
    for p in weight_parts:  # a path solution at a target's selected λ gives way to the refit
        if p[4] >= 0:
            keep = sel_lam[np.searchsorted(sel_t, p[0])] != p[1]
            wt.append(tuple(a[keep] for a in p[:4]) + (p[4],))
    w_cat = [np.concatenate([p[i] for p in wt]) if wt else np.zeros(0) for i in range(4)]
    worder = np.lexsort((w_cat[2], -w_cat[1], w_cat[0])) if w_cat[0].size else np.zeros(0, np.int64)
    w_cat = [a[worder] for a in w_cat]
    conv = fits["converged"].astype(bool)
    not_conv = sorted(set(fits["target_id"][~conv].tolist()))
    gaps = fits["rel_gap"][np.isfinite(fits["rel_gap"])]
    max_gap = float(gaps.max()) if gaps.size and estimator == "lasso" else None
    wall = time.time() - t0
    nf = fits["target_id"].size
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    if preds is None:
        preds = pa.table({"model_id": pa.array([], pa.int64()), "target_id": pa.array([], pa.int32()),
                          "predicted": pa.array([], pa.float32())})

    def tables(fit_id):
        ids = lambda n: np.full(n, fit_id, np.int64)  # noqa: E731
        return {
            "fits": pa.table({
                "fit_id": ids(nf), "experiment": [experiment] * nf,
                "alpha": np.full(nf, alpha), "estimator": [estimator] * nf,
                "target_id": fits["target_id"].astype(np.int32), "lam": fits["lam"].astype(np.float64),
                "bias": fits["bias"].astype(np.float64), "train_mse": fits["train_mse"].astype(np.float64),
                "val_mse": pa.array(fits["val_mse"].astype(np.float64), from_pandas=True),
                "nnz": fits["nnz"].astype(np.int32), "selected": fits["selected"].astype(bool),
                "n_models": fits["n_models"].astype(np.int64),
                "rel_gap": fits["rel_gap"].astype(np.float64), "n_iter": fits["n_iter"].astype(np.int32),
                "converged": conv,
            }),
            "weights": pa.table({
                "fit_id": ids(w_cat[0].size), "target_id": w_cat[0].astype(np.int32),
                "lam": w_cat[1].astype(np.float64), "train_id": w_cat[2].astype(np.int32),
                "weight": w_cat[3].astype(np.float32),
            }),
            "fit_runs": pa.table({
                "fit_id": [fit_id], "experiment": [experiment], "alpha": [alpha], "estimator": [estimator],
                "created_at": [created],
                "n_fit": [run["n_fit"]], "n_val": [run["n_val"]], "val_source": [run["val_source"]],
                "n_targets": [run["n_targets"]], "n_lambdas": [run["n_lambdas"]],
                "lambda_min_ratio": [run["lambda_min_ratio"]], "tol": [run["tol"]],
                "max_iter": [run["max_iter"]], "dtype": [run["dtype"]], "device": [run["device"]],
                "wall_time_s": [wall], "max_rel_gap": [max_gap], "n_not_converged": [int((~conv).sum())],
                "params": [json.dumps(run["params"], sort_keys=True)],
            }),
            "eval_predictions": preds.add_column(0, "fit_id", pa.array(ids(preds.num_rows))),
        }
    if rec is not None:   # one shard of a run: its targets now, the run's fit_runs row when complete
        from . import sharding
        t = tables(rec["fit_id"])
        run_row = t.pop("fit_runs")
        params = dict(run["params"], run=rec["run"], n_shards=shard[1])
        run_row = run_row.set_column(run_row.schema.get_field_index("params"), "params",
                                     pa.array([json.dumps(params, sort_keys=True)]))
        run_row = run_row.set_column(run_row.schema.get_field_index("n_targets"), "n_targets",
                                     pa.array([0], run_row.schema.field("n_targets").type))
        stats = {"n_targets": int(np.unique(fits["target_id"]).size), "wall_time_s": wall,
                 "n_not_converged": int((~conv).sum()), "max_rel_gap": max_gap, "device": run["device"]}
        sharding.commit_shard(store, rec, shard, t, run_row, stats)
        fit_id = rec["fit_id"]
    else:
        fit_id = commit_fit(store, tables, {"experiment": experiment, "alpha": alpha, "estimator": estimator})
    return FitResult(fit_id, estimator, run["n_targets"], run["n_fit"], run["n_val"], int((~conv).sum()),
                     max_gap if max_gap is not None else 0.0, wall, run["device"], not_conv)
