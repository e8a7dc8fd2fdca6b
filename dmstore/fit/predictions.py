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
    tid, bias, _ = collected.selected()
    return predict(store, experiment, alpha, tid, bias, lambda t_blk: collected.selected_matrix(t_blk, store.d),
                   dev, dt)


def predict(store, experiment, alpha, tid, bias, weights_of, dev, dt) -> pa.Table | None:
    """model_id, target_id, predicted of every eval model for targets `tid` (ascending) with
    biases `bias`; `weights_of(t_blk)` gives the weights of a block of them as float32
    [d, len(t_blk)]. None without eval models."""
    if not store.model_ids(experiment, alpha, "eval").size:
        return None
    d = store.d
    block = max(1, (256 << 20) // (4 * d))
    out = []
    for lo in range(0, tid.size, block):
        t_blk = tid[lo:lo + block]
        Wt = torch.as_tensor(weights_of(t_blk)).to(device=dev, dtype=dt)
        b = torch.as_tensor(bias[lo:lo + block]).to(device=dev, dtype=dt)
        for ch in store.iter_chunks(experiment, alpha, role="eval", with_margins=False):
            P = (torch.as_tensor(ch["masks"]).to(device=dev, dtype=dt) @ Wt + b).cpu().numpy()
            out.append((np.repeat(ch["model_ids"], t_blk.size), np.tile(t_blk, len(ch["model_ids"])),
                        P.astype(np.float32).ravel()))
    mid, t, pv = (np.concatenate(x) for x in zip(*out))
    o = np.lexsort((t, mid))
    return pa.table({"model_id": mid[o].astype(np.int64), "target_id": t[o].astype(np.int32),
                     "predicted": pv[o]})
