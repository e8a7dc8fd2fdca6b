"""Synthetic datamodel data for benchmarks: exactly αd ones per mask, sparse heavy-tailed true
weights, and noise set for a chosen R²."""
from __future__ import annotations

import numpy as np


def masks(rng, m: int, d: int, alpha: float = 0.5) -> np.ndarray:
    """bool [m, d], exactly round(alpha*d) ones per row (drawn in row blocks to bound memory)."""
    k = int(round(alpha * d))
    out = np.zeros((m, d), bool)
    for lo in range(0, m, 2048):
        hi = min(m, lo + 2048)
        idx = np.argpartition(rng.random((hi - lo, d), dtype=np.float32), k, axis=1)[:, :k]
        np.put_along_axis(out[lo:hi], idx, True, axis=1)
    return out


def datamodel_data(m=20000, d=2000, n=1000, alpha=0.5, density=0.05, r2=0.4, seed=0):
    """masks bool [m, d], margins float32 [m, n], true weights float32 [d, n]."""
    rng = np.random.default_rng(seed)
    X = masks(rng, m, d, alpha)
    theta = (rng.standard_t(df=3, size=(d, n)) * (rng.random((d, n)) < density)).astype(np.float32)
    signal = X.astype(np.float32) @ theta
    sig_var = signal.var(0)
    noise = rng.normal(size=(m, n)).astype(np.float32) * np.sqrt(sig_var * (1 - r2) / r2)
    Y = signal + noise + 2.0
    return X, Y.astype(np.float32), theta
