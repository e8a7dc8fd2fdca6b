"""The streaming passes of a fit over the store: sufficient statistics of the fit and val
models for a block of test targets (one Gram matrix for the whole fit), and the packed masks
and margins of a block of train targets (eq. 9). Row chunks stay ≤ 64 MB as floats."""
from __future__ import annotations

import numpy as np
import torch

from .operators import PackedRows, ValRows
from .stats import Stats


def scan(store, experiment, alpha, gram_t, row_t, val_ids, dev, dt, correct, need_gram, use_ids=None):
    """One streaming pass over the fit and val models: Stats (vectors; plus the raw Gram ΣxxT of
    the fit models in the compute dtype when `need_gram`) on `gram_t`, the val models' packed
    masks and margins (ValRows), and (when `row_t` is given) the packed masks (PackedRows) and Y
    of fit/val models for the eq. 9 solver. Row chunks stay ≤ 64 MB as floats. `use_ids`: read
    only these fit/val models (a fit on a share of them); None: all."""
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
        used = np.ones(isval.shape, bool) if use_ids is None else np.isin(ch["model_ids"], use_ids)
        Yall = ch["margins"]
        if correct:
            Yall = (Yall > 0).astype(np.float32)
        for g, sel in (("fit", ~isval & used), ("val", isval & used)):
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


def rows_mse(store, experiment, alpha, targets, W, bias, dev, dt, correct, use_ids=None) -> np.ndarray:
    """float64 [n]: the mean over the fit + val models (or `use_ids` of them) of
    (y − bias − x·w)² for each target, by a streaming pass over the masks (no Gram): the train
    MSE of a single-solution estimator (diff_means) at any d. W: [d, n]; bias: [n]."""
    W = torch.as_tensor(W).to(device=dev, dtype=dt)
    b = torch.as_tensor(np.asarray(bias)).to(device=dev, dtype=dt)
    acc = torch.zeros(W.shape[1], dtype=torch.float64, device=dev)
    m = 0
    max_rows = int(min(4096, max(256, (16 << 20) // max(store.d, 1))))
    for ch in store.iter_chunks(experiment, alpha, role=["fit", "val"], targets=targets, max_rows=max_rows):
        sel = np.ones(len(ch["model_ids"]), bool) if use_ids is None else np.isin(ch["model_ids"], use_ids)
        if not sel.any():
            continue
        Y = ch["margins"][sel]
        if correct:
            Y = (Y > 0).astype(np.float32)
        X = torch.as_tensor(ch["masks"][sel]).to(device=dev, dtype=dt)
        r = torch.as_tensor(np.ascontiguousarray(Y)).to(device=dev, dtype=dt) - b - X @ W
        acc += (r.to(torch.float64) ** 2).sum(0)
        m += int(sel.sum())
    return (acc / max(m, 1)).cpu().numpy()
