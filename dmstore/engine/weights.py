"""A fit as a dense matrix: the one reader of selected weights by blocks of targets, used by
`export --scores`, `embed` and `FitResult.weights()`."""
from __future__ import annotations

import numpy as np

from ..store.fits import not_found
from .query import run

BLOCK_BYTES = 64 << 20   # float32 [block, d] read at a time


def fit_target_ids(con, fit_id: int) -> np.ndarray:
    """int32 [n]: the targets of fit `fit_id`, ascending; NotFoundError (`store.fits.not_found`)
    when the store has no such fit."""
    tids = run(con, "fit_targets", f=int(fit_id)).fetchnumpy()["target_id"].astype(np.int32)
    if not tids.size:
        raise not_found(fit_id, dict(run(con, "fit_estimators").fetchall()))
    return tids


def weight_blocks(con, fit_id: int, d: int, tids: np.ndarray | None = None):
    """Yield (row offset, target ids int32 [nb], selected weights float32 [nb, d]) over the
    fit's targets (`tids`, ascending; default all of them) in blocks of ~BLOCK_BYTES."""
    tids = fit_target_ids(con, fit_id) if tids is None else tids
    step = max(1, BLOCK_BYTES // (4 * max(d, 1)))
    # a fit without path weights is read from `weights` alone (on 335 dense targets × 50,000:
    # 0.41 s against 2.53 s through the join of `datamodels`)
    query = "fit_weights_block_stored" if run(con, "fit_selected_only", f=int(fit_id)).fetchall()[0][0] \
        else "fit_weights_block"
    for lo in range(0, tids.size, step):
        blk = tids[lo:lo + step]
        w = run(con, query, f=int(fit_id), lo=int(blk[0]), hi=int(blk[-1])).fetchnumpy()
        W = np.zeros((blk.size, d), np.float32)
        W[np.searchsorted(blk, w["target_id"]), w["train_id"]] = w["weight"]
        yield lo, blk, W


def weight_matrix(store, fit_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(target_ids int32 [n], Θ float32 [n, d]): the fit's selected weights, dense, rows by target id."""
    con = store.connect()
    tids = fit_target_ids(con, fit_id)
    theta = np.zeros((tids.size, store.d), np.float32)
    for lo, blk, W in weight_blocks(con, fit_id, store.d, tids):
        theta[lo:lo + blk.size] = W
    return tids, theta


def agreement(con, f: int, g: int, d: int) -> dict[int, float | None]:
    """{target_id: Pearson correlation of fits f's and g's selected weight vectors over all d train
    examples} for the targets both fits hold (a weight a fit does not store is 0; None where either
    vector is constant). Read by dense blocks of targets in step: a join of the two fits' weight
    rows on (target, train example) took 170 s for two 5·10⁸-weight fits on 2 cores, the blocks 54 s."""
    tids = np.intersect1d(fit_target_ids(con, f), fit_target_ids(con, g))
    out: dict[int, float | None] = {}
    if not tids.size:
        return out
    for (_, blk, A), (_, _, B) in zip(weight_blocks(con, f, d, tids), weight_blocks(con, g, d, tids)):
        A, B = A.astype(np.float64), B.astype(np.float64)
        sx, sy = A.sum(1), B.sum(1)
        vx = d * np.einsum("ij,ij->i", A, A) - sx * sx
        vy = d * np.einsum("ij,ij->i", B, B) - sy * sy
        cxy = d * np.einsum("ij,ij->i", A, B) - sx * sy
        den = vx * vy
        for t, c, v in zip(blk.tolist(), cxy.tolist(), den.tolist()):
            out[t] = c / v ** 0.5 if v > 0 else None
    return out
