"""Linear operators on 0/1 mask rows kept packed (1 bit per entry): products unpack a bounded
chunk of rows at a time, so X costs m·d/8 bytes, not m·d·4. Where the int8 kernel is the fast one
(`gram.int8_available`: CUDA, VNNI/AMX CPUs) and m·d ≤ INT8_ROWS_BYTES, the rows are unpacked
once as int8 (1 byte per entry) and every product is an exact integer one (`gram.int8_matmul`):
no float copy of the rows per product: one float64 Xᵀ(X W − s) at m = 5,400, d = 60,000, 69 columns
took 0.59 s against 1.97 s on float chunks on a 2-core AMX Xeon (`bench/bench_rows.py`)."""
from __future__ import annotations

import numpy as np
import torch

from .gram import int8_available, int8_matmul, int_mm, pad8

ROW_CACHE_BYTES = 512 << 20   # mask rows below this (as floats) stay unpacked between products
CHUNK_BYTES = 64 << 20        # else each product unpacks chunks of rows of this size (as float32)
INT8_ROWS_BYTES = 4 << 30     # rows kept unpacked as int8 up to this size where the int8 kernel is fast
SPARSE_ROWS = 0.25            # X W gathers X's columns of W's non-zero rows where they are below this share


class PackedRows:
    """0/1 model rows as packed bits (uint8 [m, ⌈d/8⌉], 1 bit per entry): products unpack ≤ 64 MB
    of rows at a time, so memory does not grow with m·d·4 (rows that fit in ROW_CACHE_BYTES as
    floats are unpacked once instead). Where the int8 kernel is fast (module doc) the rows are kept
    once as int8, feature-major (Xᵀ [d8, m8]: a feature's models are one contiguous row, so the
    columns of a support or a working set are gathered as rows), and products are exact integer ones."""

    def __init__(self, packed: np.ndarray, d: int, dev, dt, int8: bool | None = None):
        """int8: keep the rows as int8 and multiply in integers (None: where `int8_available` and
        m·d ≤ INT8_ROWS_BYTES)."""
        self.packed, self.d, self.dev, self.dt = packed, d, dev, dt
        self.m = packed.shape[0]
        self.step = int(max(1, CHUNK_BYTES // (4 * max(d, 1))))
        if int8 is None:
            int8 = self.m > 0 and self.m * d <= INT8_ROWS_BYTES and int8_available(dev)
        size = 4 if dt == torch.float32 else 8
        self._t8 = self._unpack_int8() if int8 else None
        self._whole = self._unpack(0, self.m) if self.m * d * size <= ROW_CACHE_BYTES else None

    @property
    def kernel(self) -> str:
        """'int8' (rows unpacked once, integer products) or the compute dtype's name (float chunks)."""
        return "int8" if self._t8 is not None else str(self.dt).removeprefix("torch.")

    def _unpack(self, lo, hi, dt=None):
        if self._t8 is not None:
            return self._t8[:self.d, lo:hi].T.to(dt or self.dt)
        return torch.as_tensor(np.unpackbits(self.packed[lo:hi], axis=1, count=self.d)).to(self.dev, dt or self.dt)

    def _unpack_int8(self) -> torch.Tensor:
        """Xᵀ as int8 0/1 [d8, m8] (`gram.pad8` shape: zero padding), unpacked a chunk at a time."""
        r, k = pad8(torch.empty(self.d, self.m, dtype=torch.int8, device="meta")).shape
        out = torch.zeros(r, k, dtype=torch.int8, device=self.dev)
        for lo in range(0, self.m, self.step):
            hi = min(self.m, lo + self.step)
            bits = np.unpackbits(self.packed[lo:hi], axis=1, count=self.d)
            out[:self.d, lo:hi] = torch.from_numpy(bits.view(np.int8)).to(self.dev).T
        return out

    def _rows8(self, t: torch.Tensor) -> torch.Tensor:
        """Xᵀ's rows t (features) as int8 [len(t) padded to 8, m8]."""
        return pad8(self._t8.index_select(0, t))

    def concat(self, other: "PackedRows") -> "PackedRows":
        return PackedRows(np.concatenate([self.packed, other.packed]), self.d, self.dev, self.dt,
                          int8=self._t8 is not None)

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
        if self._t8 is not None:
            return self._t8.index_select(0, torch.as_tensor(t, device=self.dev))[:, :self.m].T.to(self.dt)
        bits = (self.packed[:, t // 8] >> (7 - t % 8).astype(np.uint8)) & 1
        return torch.as_tensor(bits).to(self.dev, self.dt)

    def count(self, t: torch.Tensor, e: torch.Tensor | None = None) -> torch.Tensor:
        """Exact co-occurrence counts Σ_r e_r x_r,t x_r,tᵀ of the features t [p]: float64 [p, p], by
        one int8 × int8 → int32 product (int8 rows only; m·p² op); e [m] 0/1 weights of the rows
        (eq. 9's eligibility), None for all rows."""
        p = t.numel()
        Xs = self._rows8(t)                                           # [p8, m8]
        if e is not None:
            ei = torch.nn.functional.pad(e.to(torch.int8), (0, self._t8.shape[1] - self.m))
            return int_mm(Xs * ei, Xs.T)[:p, :p].double()
        return int_mm(Xs, Xs.T)[:p, :p].double()

    def matmul(self, W: torch.Tensor) -> torch.Tensor:
        """X W  [m, n]."""
        if self._t8 is not None:
            rows = W.ne(0).any(1).nonzero().squeeze(1)
            if rows.numel() > SPARSE_ROWS * self.d:
                return int8_matmul(self._t8.T, W)[:self.m]
            return int8_matmul(self._rows8(rows).T, W[rows])[:self.m]   # W's non-zero rows alone (the supports)
        out = torch.empty(self.m, W.shape[1], dtype=W.dtype, device=W.device)
        for lo, hi, X in self.chunks():
            torch.matmul(X, W, out=out[lo:hi])
        return out

    def rmatmul(self, R: torch.Tensor) -> torch.Tensor:
        """Xᵀ R  [d, n]."""
        if self._t8 is not None:
            Rp = torch.nn.functional.pad(R, (0, 0, 0, self._t8.shape[1] - self.m))
            return int8_matmul(self._t8, Rp)[:self.d]
        out = torch.zeros(self.d, R.shape[1], dtype=R.dtype, device=R.device)
        for lo, hi, X in self.chunks():
            out.addmm_(X.T, R[lo:hi])
        return out

    def normal_matvec(self, W: torch.Tensor, f) -> torch.Tensor:
        """Xᵀ f(lo, hi, X W) [d, n], one unpacking of each row chunk; in W's dtype (float64 W: a
        float64 product, the 0/1 rows are exact in any dtype; int8 rows: both products in integers,
        f on all rows at once)."""
        if self._t8 is not None:
            return self.rmatmul(f(0, self.m, self.matmul(W)))
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
