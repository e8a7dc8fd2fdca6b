"""Linear operators on 0/1 mask rows kept packed (1 bit per entry): products unpack a bounded
chunk of rows at a time, so X costs m·d/8 bytes, not m·d·4."""
from __future__ import annotations

import numpy as np
import torch

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

    def _unpack(self, lo, hi, dt=None):
        return torch.as_tensor(np.unpackbits(self.packed[lo:hi], axis=1, count=self.d)).to(self.dev, dt or self.dt)

    def concat(self, other: "PackedRows") -> "PackedRows":
        return PackedRows(np.concatenate([self.packed, other.packed]), self.d, self.dev, self.dt)

    def chunks(self, dt=None):
        """(lo, hi, X [rows, d]) in the compute dtype (or `dt`: unpacked straight into it)."""
        if self._whole is not None:
            yield 0, self.m, self._whole if dt in (None, self.dt) else self._whole.to(dt)
            return
        for lo in range(0, self.m, self.step):
            hi = min(self.m, lo + self.step)
            yield lo, hi, self._unpack(lo, hi, dt)

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
        """Xᵀ f(lo, hi, X W) [d, n], one unpacking of each row chunk; in W's dtype (float64 W: a
        float64 product, the 0/1 rows are exact in any dtype)."""
        out = torch.zeros(self.d, W.shape[1], dtype=W.dtype, device=W.device)
        for lo, hi, X in self.chunks(W.dtype):
            out.addmm_(X.T, f(lo, hi, X @ W))
        return out


class ValRows:
    """The validation models of a block: masks packed (PackedRows) and margins Y [m_v, n]."""

    def __init__(self, rows: "PackedRows", Y: torch.Tensor):
        self.rows, self.Y, self.m = rows, Y, rows.m

    def gram_matvec(self, W: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """(X − μ)ᵀ (X − μ) W  [d, n], in W's dtype."""
        out = torch.zeros_like(W)
        for _, _, X in self.rows.chunks():
            Xc = X.to(W.dtype) - mu.to(W.dtype)
            out.addmm_(Xc.T, Xc @ W)
        return out

    def gram_columns(self, idx: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """((X − μ)ᵀ (X − μ))[:, idx]  [d, len(idx)] (recomputed per call: callers that need the
        same columns again should keep them)."""
        out = torch.zeros(self.rows.d, idx.numel(), dtype=mu.dtype, device=mu.device)
        for _, _, X in self.rows.chunks():
            Xc = X - mu
            out.addmm_(Xc.T, Xc[:, idx])
        return out

    def gram_blocks(self, idx: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """((X − μ)ᵀ (X − μ))[idx[b]][:, idx[b]] for every b: [k, p, p] for idx [k, p]
        (m_v·k·p² flops)."""
        k, p = idx.shape
        out = torch.zeros(k, p, p, dtype=mu.dtype, device=mu.device)
        mu_i = mu[idx]
        for _, _, X in self.rows.chunks():
            Xc = (X[:, idx] - mu_i).permute(1, 0, 2)                 # [k, rows, p]
            out.baddbmm_(Xc.transpose(1, 2), Xc)
        return out

    def mse(self, W: torch.Tensor, mu: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """Mean over the rows of (y − ȳ − (x − μ)ᵀw)², per column [n]."""
        tot = torch.zeros(W.shape[1], dtype=W.dtype, device=W.device)
        for lo, hi, X in self.rows.chunks():
            err = (self.Y[lo:hi] - yb) - (X - mu) @ W
            tot += (err * err).sum(0)
        return tot / max(self.m, 1)
