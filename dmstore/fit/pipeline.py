"""Datamodels for many targets at once: one regression per target example, all sharing the
store's mask matrix, written back as the `fit_runs`, `fits` and `weights` relations.

Objective (scikit-learn's convention), per target j, X the raw 0/1 masks of the models used:

    min_{w,b}  1/(2m) ‖X w + b − y_j‖² + λ ‖w‖₁          (lasso; ridge uses λ/2 ‖w‖²)

Weights and bias are reported in raw-mask coordinates (X is centred internally, never scaled).

Test targets share one Gram matrix, accumulated by streaming row chunks of the store (`stats`).
Train targets follow paper eq. 9: models whose mask contains the target are excluded from its
regression, so every train target has its own row set. That is solved exactly in data space:
H_j W = Xᵀ(E_j ⊙ (X w − μ_jᵀw)) / m_j with E_j the 0/1 eligibility of each model for target j —
two products with the mask matrix instead of one with the Gram matrix; the fit rows of the mask
matrix are held packed (1 bit per entry) and unpacked chunk by chunk inside each product
(PackedRows), so X costs m·d/8 bytes, not m·d·4. Working sets (the default) take such a product
once per round (the gradient and the certificate on all d); inside a round each target's
sub-problem runs on its sub-Gram H_j[S, S], counted from the bits of S alone (m·|S|² flops).

λ is chosen per target by MSE on validation models (role 'val', or a seeded hash split of the
fit models when the store has none), then the target is refit on fit + val models at that λ,
as the paper's reference implementation does (appendix E.1).
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from .. import __version__
from ..errors import InputError, StoreError
from ..progress import progress as progress_bar
from ..storage import log
from ..store.validate import check_alpha
from . import runs
from .activeset import resolve_solver, resolve_train_solver, solver_choice
from .blocks import GramBlock, RowBlock
from .gram import probe_cpu as gram_probe
from .newton_cg import low_precision
from .params import FitParams, resolve_device
from .predictions import eval_predictions
from ..store.fits import Claim, existing, identity
from .results import Collected, FitResult, write
from .scan import rows_mse, scan
from . import solvers
from .solvers import lipschitz_gram
from .stats import center_gram_, model_order, split_val


GRAM_BYTES_MAX = 4 << 30
"""Test targets' working sets read sub-Grams from one float32 d × d Gram up to this size (d ≤ 32,768);
beyond (d = 60,000: 14.4 GB, plus as much again to count it) they run in data space like eq. 9, from
the masks' bits. Below it the Gram is the faster: at d = 8,000, m = 2,000, 20 targets, 10 λ to 0.01·λmax,
102 s with every (target, λ) certified against 239 s with 39 at the cap in data space, whose columns
handed to the full problem get FISTA alone (H's columns cost a pass over the masks each)."""


def fit(store, experiment: str, alpha: float, estimator: str = "lasso", targets="test",
        n_lambdas: int = 30, lambda_min_ratio: float = 1e-3, device: str = "auto",
        dtype: str = "float32", keep_path: bool = False, tol: float = 1e-6, max_iter: int = 1000,
        val_fraction: float = 0.1, seed: int = 0, block_size: int | None = None,
        progress: bool | None = None, reuse: bool = False, shard: tuple[int, int] | None = None,
        run: str | None = None, solver: str = "auto", path_patience: int | None = None,
        models: int | None = None) -> FitResult:
    """Fit datamodels for `targets` ('test' | 'train' | 'all' | ids) of (experiment, alpha) and
    write them into the store. See the module docstring for the objective and the procedure.
    `shard` = (K, N) with `run` = NAME fits the K-th of N shares of the targets as part of the one
    fit (one fit_id) that run NAME's N shards form together (see `dmstore.fit.runs`); a shard
    already committed is not fitted again. `reuse`: return an identical earlier fit instead.
    `solver` (lasso, test targets): 'activeset' (FISTA with anchored products, then batched
    Newton–CG steps on the full problem, `fit.newton_cg`), 'workingset' (per-target working sets,
    `fit.workingset`), 'fista' (batched FISTA alone), or 'auto' (activeset; the choice is recorded
    in fit_runs.params.runtime: activeset where the fit models outnumber the train examples, else
    workingset); train targets (eq. 9) use working sets under 'auto' and 'workingset' (sub-Grams of
    each target's set from the masks' bits: a pass over the masks per round, not per iteration) and
    FISTA with anchored products under 'fista' and 'activeset'. `path_patience` = K (lasso, ridge): a target stops walking
    the λ path after K consecutive λ whose validation MSE is above its best so far (smaller λ
    cannot be selected unless its validation curve turns down again); the λ it skips have no rows
    in `fits`. None: the whole path for every target. `models` = N: fit on N of the fit + val
    models, the first N of a seeded order (`stats.model_order`; nested: the 500 are inside the
    1,000), recorded in fit_runs.params.models (n_fit + n_val = N); None: every model."""
    store.require_writable()
    p = FitParams(estimator, n_lambdas, lambda_min_ratio, device, dtype, keep_path, tol, max_iter,
                  val_fraction, seed, block_size, solver, path_patience, models)
    if (shard is None) != (run is None):
        raise InputError("shard and run go together: name the run the N shards form", params=("shard", "run"))
    if shard is not None and not 0 <= shard[0] < shard[1]:
        raise InputError(f"shard {shard[0]}/{shard[1]}: K/N needs 0 <= K < N", params=("shard",))
    return _fit(store.pinned(), experiment, check_alpha(alpha), targets, p, progress, reuse, shard, run)


def _models(store, experiment, alpha, p: FitParams):
    """(fit+val model ids, val ids, where the val models come from: 'role' | 'split'), the
    first `p.models` of the seeded model order when set."""
    models = store.models(experiment, alpha, ["fit", "val"], ["model_id", "role"])
    if models.num_rows == 0:
        store.require_models(experiment, alpha, ["fit", "val"])
    ids = models["model_id"].to_numpy()
    roles = np.asarray(models["role"].to_pylist())
    if p.models is not None:
        if p.models > ids.size:
            raise InputError(f"models {p.models}: {experiment!r} at alpha {alpha} has only {ids.size} fit + val models; "
                             f"give at most {ids.size} (or train more)", params=("models",))
        keep = np.isin(ids, model_order(ids, p.seed)[:p.models])
        ids, roles = ids[keep], roles[keep]
    if (roles == "val").any():
        return ids, np.unique(ids[roles == "val"]), "role"
    return ids, np.unique(ids[split_val(ids, p.val_fraction, p.seed)]), "split"


def _fit(store, experiment, alpha, targets, p: FitParams, progress, reuse, shard, run) -> FitResult:
    """`fit` on a pinned store (every read of this fit sees one version)."""
    t0 = time.time()
    dev, dt, est = resolve_device(p.device), p.torch_dtype, p.est
    tids = store.resolve_targets(targets)
    d = store.d
    ids, val_ids, val_source = _models(store, experiment, alpha, p)
    n_val, n_fit = int(val_ids.size), int(ids.size - val_ids.size)
    use_ids = None if p.models is None else ids
    if n_fit < 2:
        raise InputError(f"only {n_fit} fit models for {experiment!r} at alpha {alpha}; need more")
    params = dict(p.record(), experiment=experiment, alpha=alpha, dmstore=__version__,
                  targets=str(targets) if isinstance(targets, str) else [int(x) for x in tids])
    rec = None
    if run is not None:
        rec = runs.open_run(store, run, params, shard[1])
        if rec["version"] != store.as_of:   # every shard reads the version the run started at
            gone = log.snapshot(store.root, rec["version"]).missing_files()
            if gone:
                raise StoreError(f"run {run!r} reads store version {rec['version']}, but {len(gone)} of its files "
                                 f"were deleted since (by vacuum, or by hand), e.g. {gone[0]}; its remaining shards "
                                 f"cannot fit the same data. Start the run again under a new run name")
            return _fit(store.pinned(rec["version"]), experiment, alpha, targets, p, progress, False, shard, run)
        done = runs.committed_shards(log.snapshot(store.root), run)
        if shard[0] in done:
            s = done[shard[0]]["stats"]
            return FitResult(rec["fit_id"], p.estimator, s["n_targets"], n_fit, n_val, s["n_not_converged"],
                             s["max_rel_gap"] or 0.0, s["wall_time_s"], s["device"], [], reused=True, store=store)
        tids = runs.shard_targets(tids, shard)
    claim = Claim(p.estimator, experiment, alpha, identity(p.estimator, experiment, alpha, params, n_fit, n_val),
                  reuse=reuse)
    if reuse and run is None:   # the same settings and models again: the stored fit is the answer
        earlier = existing(store, claim)
        if earlier is not None:
            return FitResult.from_row(store, earlier)
    test_t, train_t = tids[tids >= d], tids[tids < d]
    opts = p.solver_options()
    opts["solver"] = resolve_solver(p.solver, d, n_fit)
    train_opts = dict(opts, solver=resolve_train_solver(p.solver))
    block_size = p.block_size
    if block_size is None:  # ~8 [d, block] working arrays within ~1 GiB (the solvers' iterates are float64)
        block_size = int(max(64, min(16384, (1 << 30) // (8 * max(d, 1) * 8))))
    # LASSO working sets where fit models are not more than train examples and the d × d Gram is
    # larger than GRAM_BYTES_MAX: test targets in data space (see GRAM_BYTES_MAX)
    rows_test = est.name == "lasso" and opts["solver"] == "workingset" and n_fit <= d and 4 * d * d > GRAM_BYTES_MAX
    gram_t = test_t[:0] if rows_test else test_t
    test_blocks = [gram_t[i:i + block_size] for i in range(0, gram_t.size, block_size)]
    row_block = max(16, block_size // 4)
    row_blocks = [(train_t[i:i + row_block], True) for i in range(0, train_t.size, row_block)]
    if rows_test:
        row_blocks += [(test_t[i:i + row_block], False) for i in range(0, test_t.size, row_block)]
    bar = progress_bar(total=(len(test_blocks) + len(row_blocks)) * p.path_length, desc=f"fit {p.estimator}",
                       unit="λ-block", enabled=progress)
    out, cache = Collected(), {}
    runtime = {"solver": solver_choice(opts["solver"], test_t.size, train_t.size, train_opts["solver"], rows_test)
               } if est.name == "lasso" else {}
    for bi, block_t in enumerate(test_blocks):
        S_fit, S_val, val_rows, _ = scan(store, experiment, alpha, block_t, None, val_ids, dev, dt,
                                         est.on_correctness, need_gram=bi == 0 and est.needs_gram, use_ids=use_ids)
        if S_fit.xx is not None:   # the one d×d matrix of the fit: centred in place, kept for every block
            runtime["gram"] = f"{S_fit.gram.kernel} products, {str(S_fit.xx.dtype)[6:]} counts"
            if S_fit.gram.device.type == "cpu":
                runtime["gram_probe"] = gram_probe()       # the measured G op/s behind the CPU's choice
            cache["G"] = center_gram_(S_fit.xx, S_fit.sx, S_fit.m).to(dt)
            cache["L"] = lipschitz_gram(cache["G"])
            S_fit.xx = S_fit.gram = None
        block = GramBlock(S_fit, S_val, val_rows, cache.get("G"), cache.get("L"), dt, shared=cache)
        if cache.get("G") is not None and est.name == "lasso":
            cache["low"] = block.low()
        rows, weights, _ = est.solve(block, opts, bar)
        if not est.needs_gram:   # one solution, no Gram: its train MSE from a pass over the masks
            rows[0]["train_mse"] = rows_mse(store, experiment, alpha, block_t, weights[0][1], rows[0]["bias"], dev,
                                            dt, est.on_correctness, use_ids)
        out.add(rows, weights, block_t)
        del block
    if cache.get("factor") is not None:   # the Newton-CG preconditioner: its dtype and the probe behind it
        runtime["preconditioner"] = dict(low_precision(dev), dtype=str(cache["factor"].dtype).removeprefix("torch."))
    if cache.get("low") is not None:      # FISTA's difference products and CG's, where not float32
        runtime["low_products"] = dict(dtype=str(cache["low"]).removeprefix("torch."),
                                       anchor_every=solvers.LOW_ANCHOR_EVERY)
    for block_t, eq9 in row_blocks:   # packed masks + this block's margins, streamed per block
        _, _, _, (X, Y) = scan(store, experiment, alpha, np.zeros(0, np.int32), block_t, val_ids, dev, dt,
                               est.on_correctness, need_gram=False, use_ids=use_ids)
        if "rows" not in runtime:    # data-space products: int8 rows (exact integer products) or float chunks
            runtime["rows"] = f"{X['fit'].kernel} products"
            if dev.type == "cpu":
                runtime["gram_probe"] = gram_probe()
        block = RowBlock(X, Y, torch.as_tensor(block_t.astype(np.int64), device=dev), dt, exclude=eq9)
        rows, weights, _ = est.solve(block, train_opts, bar)
        out.add(rows, weights, block_t)
        del block, X, Y
    bar.close()
    preds = eval_predictions(store, experiment, alpha, out, dev, dt)
    if runtime:
        params["runtime"] = runtime     # recorded in fit_runs.params, never part of the fit's identity
    result = write(store, experiment, alpha, p.estimator, out, preds, dict(
        n_fit=n_fit, n_val=n_val, val_source=val_source, n_targets=int(tids.size), n_lambdas=p.path_length,
        lambda_min_ratio=p.lambda_min_ratio if est.path else None, tol=p.tol if est.reports_gap else None,
        max_iter=p.max_iter, dtype=p.dtype, device=str(dev), params=params), t0, est.reports_gap, rec, shard, claim)
    if result.not_converged_targets:
        t = result.not_converged_targets
        warnings.warn(f"fit {result.fit_id}: {len(t)} target(s) hit the iteration cap ({p.max_iter}) at some "
                      f"lambda, e.g. {t[:10]}; they are marked converged = false in `fits`. Raise max_iter "
                      f"or tol, or lambda_min_ratio (small lambdas are slow when models are few)", stacklevel=3)
    return result
