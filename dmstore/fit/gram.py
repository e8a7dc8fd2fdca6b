"""Exact Gram matrices of 0/1 mask rows: ΣxxT [d, d] accumulated chunk by chunk, every entry
an exact count of models.

Two kernels, chosen at run time per device (`kernel_for`) and recorded in `fit_runs.params`
(`runtime.gram`):
- 'int8': `torch._int_mm` (int8 × int8 → int32) on CUDA, where the integer tensor cores run
  faster than float32, and on a CPU where it measures faster (`probe_cpu`: oneDNN's VNNI/AMX
  kernels on AVX-512/AVX-VNNI CPUs: 3.6× float32 at d = 4,096 on a 2-core Xeon with AMX); chunk
  rows and d are zero-padded to multiples of 8 (zero rows and columns add nothing). Exact for
  any chunk of < 2³¹ rows.
- 'float32' (also the float64 compute dtype's own GEMM): on a CPU where `_int_mm` is the slower
  (this project's 2-core AVX2 EPYC, no VNNI: `bench/bench_gram.py` measures 0.5–1.0 G op/s for
  `_int_mm` against 60–80 GFLOP/s for float32 GEMM; torch falls back to a reference loop there).
  A float GEMM of 0/1 entries is exact while every partial sum stays below 2²⁴ (float32) or 2⁵³
  (float64): a chunk never has more rows than that.

The accumulator (`Accumulator.xx`) is float32 while the running count fits in 2²⁴ models and
becomes float64 (exact to 2⁵³) the moment a chunk would pass it: counts stay exact whatever m is.

    acc = Accumulator(d, device, dtype)          # dtype: the fit's compute dtype
    for X in chunks: acc.add(X)                  # X: 0/1 [rows, d], any dtype (bool, int8, float)
    acc.xx                                       # [d, d] exact counts, float32 or float64
"""
from __future__ import annotations

import time

import torch

EXACT = {torch.float32: 1 << 24, torch.float64: 1 << 53}   # counts a float holds exactly


PROBE_ROWS, PROBE_D = 256, 512   # the CPU probe's screening product: 2·256·512² = 134 M op
PROBE_BIG = 1024                 # its timed product where the integer kernel is not a reference loop
PENDING_BYTES = 256 << 20        # int8 rows an Accumulator holds before one product (`Accumulator`)
PROBE_MARGIN = 1.2               # int8 is chosen on a CPU only when this much faster than float32
_cpu_choice: dict = {}


def _best_of(f, n: int = 3) -> float:
    f()
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def probe_cpu() -> dict:
    """Times `_int_mm` against a float32 GEMM on 0/1 rows, once per process: {'int8_gops',
    'float32_gops', 'int8'} (int8: the integer path is the faster by PROBE_MARGIN and gives the
    same counts). A warm-up call first (oneDNN generates its kernel: ~10 ms, 20× the product on an
    AMX CPU); then one [PROBE_ROWS, PROBE_D] product screens out a reference loop (4× slower than
    float32's: ~0.3 s on an AVX2 CPU, timed no further); otherwise both kernels are timed on a
    [PROBE_BIG, PROBE_BIG] block (2.1 G op each; ~40 ms in all), where the fast kernels reach
    their rate (a 256 × 512 product ran int8 at 1–1.5× float32, the fit's shapes at 3.6×)."""
    if _cpu_choice:
        return _cpu_choice
    g = torch.Generator().manual_seed(0)
    X = (torch.rand(PROBE_ROWS, PROBE_D, generator=g) < 0.5)
    Xf = X.float()
    ops = 2 * PROBE_ROWS * PROBE_D * PROBE_D
    tf = _best_of(lambda: Xf.T @ Xf)
    out = {"float32_gops": round(ops / tf / 1e9, 1), "int8_gops": None, "int8": False}
    if hasattr(torch, "_int_mm"):
        try:
            int8_gram(X[:64, :64])                  # the warm-up: oneDNN's kernel generation
            t = time.perf_counter()
            counts = int8_gram(X)
            first = time.perf_counter() - t
            if first > 4 * tf:                      # once more: a busy machine can stall one call 40×
                t = time.perf_counter()
                int8_gram(X)
                first = min(first, time.perf_counter() - t)
            ti = first
            if first <= 4 * tf:
                B = (torch.rand(PROBE_BIG, PROBE_BIG, generator=g) < 0.5)
                Bf = B.float()
                ops = 2 * PROBE_BIG ** 3
                tf = _best_of(lambda: Bf.T @ Bf, 5)
                ti = _best_of(lambda: int8_gram(B), 5)
                out["float32_gops"] = round(ops / tf / 1e9, 1)
            out["int8_gops"] = round(ops / ti / 1e9, 1)
            out["int8"] = ti * PROBE_MARGIN < tf and torch.equal(counts.float(), Xf.T @ Xf)
        except RuntimeError:
            pass
    _cpu_choice.update(out)
    return _cpu_choice


def int8_available(device) -> bool:
    """`torch._int_mm` on this device type and the faster kernel there: CUDA builds of
    torch ≥ 2.1; on the CPU, where `probe_cpu` measures it faster than float32."""
    if not hasattr(torch, "_int_mm"):
        return False
    kind = torch.device(device).type
    return kind == "cuda" or (kind == "cpu" and probe_cpu()["int8"])


def kernel_for(device, dtype) -> str:
    """'int8' where the integer path exists and is the fast one (CUDA; a CPU where the probe
    measures it faster), else the float dtype's name ('float32' | 'float64')."""
    return "int8" if int8_available(device) else str(dtype).removeprefix("torch.")


def _pad8(n: int) -> int:
    return -n % 8


def int8_gram(X: torch.Tensor) -> torch.Tensor:
    """XᵀX for 0/1 X [r, d] (r < 2³¹) by int8 products with int32 accumulation: int32 [d, d]."""
    r, d = X.shape
    Xi = X.to(torch.int8)
    pr, pd = _pad8(r), _pad8(d)
    if pr or pd or r < 16:     # _int_mm wants sizes that are multiples of 8 (and > 16 rows)
        Xi = torch.nn.functional.pad(Xi, (0, pd, 0, pr + (16 if r < 16 else 0)))
    out = torch._int_mm(Xi.T.contiguous(), Xi)
    return out[:d, :d]


class Accumulator:
    """ΣxxT of 0/1 rows, exact: see the module docstring. `kernel`: 'int8', 'float32' or
    'float64' (default: `kernel_for(device, dtype)`). With the int8 kernel, rows wait as int8
    until PENDING_BYTES of them are held (or `xx` is read), so a whole fit's rows are usually one
    product: a product per 64 MB chunk cost an int32 [d, d] result and its conversion each
    (d = 12,000, 14,400 rows in 11 chunks: 5.9 s, 3.2 s of them the products)."""

    def __init__(self, d: int, device, dtype=torch.float32, kernel: str | None = None):
        self.d, self.device = d, torch.device(device)
        self.kernel = kernel or kernel_for(device, dtype)
        self.m = 0
        acc = torch.float64 if dtype == torch.float64 else torch.float32
        self._xx = torch.zeros(d, d, dtype=acc, device=self.device)
        self._pending: list[torch.Tensor] = []
        self._counted = 0          # rows already in _xx

    @property
    def xx(self) -> torch.Tensor:
        """[d, d] the exact counts of every row added so far (float32, or float64 past 2²⁴ rows)."""
        self.flush()
        return self._xx

    def _room(self, r: int) -> None:
        """Promote the counts to float64 before r more rows could pass what float32 holds exactly."""
        if self._xx.dtype == torch.float32 and self._counted + r >= EXACT[torch.float32]:
            self._xx = self._xx.double()

    def add(self, X: torch.Tensor) -> None:
        """X: 0/1 [r, d]; any dtype."""
        r = X.shape[0]
        if not r:
            return
        self.m += r
        if self.kernel == "int8":
            self._pending.append(X.to(torch.int8))
            if sum(p.shape[0] for p in self._pending) * self.d >= PENDING_BYTES:
                self.flush()
            return
        self._room(r)
        ft = torch.float64 if self.kernel == "float64" else torch.float32
        step = EXACT[ft] - 1          # a chunk's own partial sums stay exact in ft
        for lo in range(0, r, step):
            Xf = X[lo:lo + step].to(ft)
            if ft == self._xx.dtype:
                self._xx.addmm_(Xf.T, Xf)           # in place: no d×d temporary
            else:
                self._xx += (Xf.T @ Xf).to(self._xx.dtype)
        self._counted += r

    def flush(self) -> None:
        """Count the rows waiting as int8: one product (int32 sums, exact below 2³¹ rows)."""
        if not self._pending:
            return
        Xi = self._pending[0] if len(self._pending) == 1 else torch.cat(self._pending)
        self._pending = []
        r = Xi.shape[0]
        self._room(r)
        step = (1 << 31) - 1
        for lo in range(0, r, step):
            self._xx += int8_gram(Xi[lo:lo + step]).to(self._xx.dtype)
        self._counted += r


LIMBS = {torch.float64: 8, torch.float32: 4}
"""7-bit digits per float column in `int8_matmul`: 56 bits for float64 (its mantissa has 53), 28 for
float32 (24), each relative to 4× the column's largest |entry|."""


def pad8(A: torch.Tensor) -> torch.Tensor:
    """int8 0/1 rows A [r, k] zero-padded to [max(r8, 24), k8] (multiples of 8, > 16 rows: the
    shapes CUDA's `_int_mm` accepts; zero rows and columns add nothing)."""
    r, k = A.shape
    pr = max(r + _pad8(r), 24) - r
    pk = _pad8(k)
    return torch.nn.functional.pad(A, (0, pk, 0, pr)) if pr or pk else A


def int_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`torch._int_mm` (int8 × int8 → int32); on CUDA with both operands made contiguous (cuBLASLt's
    integer GEMM takes fewer layouts than the CPU's oneDNN, which runs transposed views as they are)."""
    if a.is_cuda:
        a, b = a.contiguous(), b.contiguous()
    return torch._int_mm(a, b)


def int8_matmul(A: torch.Tensor, B: torch.Tensor, limbs: int | None = None) -> torch.Tensor:
    """A B  [M, n] in B's dtype, for 0/1 A int8 [M, K] (from `pad8`; a transposed view is fine)
    and float B [k ≤ K, n]: each column of B in fixed point, V_j = B_j / 2^e_j with 2^e_j ≤ 8·max|B_j|
    (|V_j| < 1/4), as `limbs` base-128 digits taken by rounding (int8 in [−64, 64]; every float step
    exact) → one int8 × int8 → int32 product [M, L·n], exact (|sums| ≤ 64·K < 2³¹ for K < 2²⁵),
    recombined in float64. The only rounding is B's to L digits, ≤ 2^(2 − 7L)·max|B_j| per entry
    (2⁻⁵⁴·max|B_j| for float64's 8 digits), then float64's on the L digit products: about a
    float64 GEMM's accuracy, without unpacking the rows to floats."""
    M, K = A.shape
    k, n = B.shape
    if K >= 1 << 25:
        raise ValueError(f"int8_matmul: {K} terms per sum could pass int32's range; split the product")
    if not n:
        return torch.zeros(M, 0, dtype=B.dtype, device=B.device)
    L = limbs or LIMBS.get(B.dtype, 8)
    Bd = B.to(torch.float64)
    top = Bd.abs().amax(0) if k else torch.zeros(n, dtype=torch.float64, device=B.device)
    e = torch.frexp(top)[1].to(torch.int64) + 2                # |B_j| < 2^(e_j − 2)
    V = torch.ldexp(Bd.T, -e[:, None]).contiguous()             # [n, k], |V| < 1/4
    N = L * n + _pad8(L * n)
    digits = torch.zeros(N, K, dtype=torch.int8, device=B.device)
    for i in range(L):                                          # most significant first
        V.mul_(128.0)
        r = torch.round(V)
        V.sub_(r)
        digits[i * n:(i + 1) * n, :k] = r
    P = int_mm(A, digits.T)                                     # exact int32 [M, N]
    out = P[:, (L - 1) * n:L * n].to(torch.float64)
    for i in range(L - 2, -1, -1):                              # Horner, least significant first
        out = out / 128.0 + P[:, i * n:(i + 1) * n]
    return torch.ldexp(out, (e - 7)[None, :]).to(B.dtype)
