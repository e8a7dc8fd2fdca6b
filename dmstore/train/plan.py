"""The deterministic plan of a training run: model k of a run (0 ≤ k < models) is fully
determined by (experiment, alpha, role, seed, k). Its mask is mask number k // repeats, drawn
with exactly round(alpha·d) examples from a generator seeded by those values, and its training
seed is derived the same way, so any shard of the plan, on any machine, trains the same models."""
from __future__ import annotations

import hashlib

import numpy as np


def h64(*parts) -> int:
    """A stable non-negative 63-bit integer from the parts."""
    h = hashlib.blake2b("\0".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") >> 1


def plan_models(experiment: str, alpha: float, role: str, seed: int, ks: np.ndarray, d: int,
                repeats: int = 1):
    """masks bool [k, d], seeds int64 [k], mask_ids int64 [k] of models `ks`."""
    size = int(round(alpha * d))
    masks = np.zeros((ks.size, d), bool)
    seeds = np.empty(ks.size, np.int64)
    mask_ids = np.empty(ks.size, np.int64)
    for i, k in enumerate(ks.tolist()):
        mi = k // repeats
        mkey = (experiment, repr(alpha), role, seed, "mask", mi)
        rng = np.random.default_rng(h64(*mkey))
        masks[i, rng.choice(d, size=size, replace=False)] = True
        mask_ids[i] = h64(*mkey)
        seeds[i] = h64(experiment, repr(alpha), role, seed, "model", k) >> 1
    return masks, seeds, mask_ids
