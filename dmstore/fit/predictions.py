"""Eval predictions of a fit: the selected datamodel's output (mask · w + b) for every eval
model, as a matrix product by blocks of targets against streamed chunks of eval masks (torch,
on the fit's device)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch


def eval_predictions(store, experiment, alpha, collected, dev, dt) -> pa.Table | None:
    """Predictions of the selected datamodels (`collected`: `results.Collected`) for every eval
    model, computed by blocks of targets against streamed chunks of eval masks. None when there
    are no eval models."""
    tid, bias, sel = collected.selected()
    wt = np.concatenate([p[0] for p in sel])
    wi = np.concatenate([p[2] for p in sel])
    wv = np.concatenate([p[3] for p in sel])
    return predict(store, experiment, alpha, tid, bias, wt, wi, wv, dev, dt)


def predict(store, experiment, alpha, tid, bias, wt, wi, wv, dev, dt) -> pa.Table | None:
    """model_id, target_id, predicted of every eval model for targets `tid` (ascending) with
    biases `bias` and weights given as triples (target wt, train id wi, value wv); None without
    eval models."""
    if not store.model_ids(experiment, alpha, "eval").size:
        return None
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
