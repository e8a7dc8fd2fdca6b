"""Sufficient statistics of a linear regression on masks, accumulated by streaming row chunks,
so the mask matrix is never whole in memory (m is bounded by disk).

For one group of models (fit or val) and a block of targets:
    m, Σx [d], ΣxxᵀT [d, d] (exact counts), Σxy [d, n], Σy [n], Σy² [n]  — raw, uncentred.
Centring is done afterwards in float64 (`centered`), which keeps ΣxxT exact and avoids the
cancellation of accumulating centred data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .gram import Accumulator


@dataclass
class Stats:
    m: int
    sx: torch.Tensor      # [d]  float64
    raw: torch.Tensor | None   # [d, d] ΣxxT where not accumulated by `gram` (None: not kept)
    xy: torch.Tensor      # [d, n] float64
    sy: torch.Tensor      # [n]
    yy: torch.Tensor      # [n]
    gram: Accumulator | None = None   # exact counts behind xx (fit.gram)

    @property
    def xx(self) -> torch.Tensor | None:
        """ΣxxT [d, d] (exact counts; the accumulator's rows still waiting are counted on read)."""
        return self.gram.xx if self.gram is not None else self.raw

    @xx.setter
    def xx(self, value) -> None:
        self.gram, self.raw = None, value

    @classmethod
    def zeros(cls, d: int, n: int, device, gram: bool = True, gram_dtype=torch.float64) -> "Stats":
        """Empty statistics; the Gram (when `gram`) exact (`fit.gram.Accumulator`: float32 counts
        while they fit in 2²⁴ models, float64 after; the kernel chosen for the device)."""
        z = lambda *s: torch.zeros(*s, dtype=torch.float64, device=device)  # noqa: E731
        acc = Accumulator(d, device, gram_dtype) if gram else None
        return cls(0, z(d), None, z(d, n), z(n), z(n), acc)

    def add(self, X: torch.Tensor, Y: torch.Tensor) -> None:
        """X: 0/1 [c, d] in the compute dtype; Y: [c, n]. ΣxxT exact (see `fit.gram`)."""
        self.m += X.shape[0]
        self.sx += X.sum(0, dtype=torch.float64)
        if self.gram is not None:
            self.gram.add(X)
        self.xy += (X.T @ Y).double()
        Yd = Y.double()
        self.sy += Yd.sum(0)
        self.yy += (Yd * Yd).sum(0)

    def __add__(self, o: "Stats") -> "Stats":
        return Stats(self.m + o.m, self.sx + o.sx,
                     None if self.xx is None or o.xx is None else self.xx + o.xx,
                     self.xy + o.xy, self.sy + o.sy, self.yy + o.yy)

    def means(self):
        return self.sx / self.m, self.sy / self.m

    def centered(self, mu=None, ybar=None, gram: bool = True):
        """(G [d, d], C [d, n], s [n]) of the rows centred at (mu, ybar) (default: own means),
        each divided by m:  G = Σ(x−μ)(x−μ)ᵀ/m,  C = Σ(x−μ)(y−ȳ)/m,  s = Σ(y−ȳ)²/m."""
        own_mu, own_y = self.means()
        mu = own_mu if mu is None else mu
        ybar = own_y if ybar is None else ybar
        m = self.m
        # Σ(x−μ)(x−μ)ᵀ = Σxxᵀ − Σx μᵀ − μ Σxᵀ + m μμᵀ
        G = None
        if gram and self.xx is not None:
            G = (self.xx - torch.outer(self.sx, mu) - torch.outer(mu, self.sx) + m * torch.outer(mu, mu)) / m
        C = (self.xy - torch.outer(self.sx, ybar) - torch.outer(mu, self.sy) + m * torch.outer(mu, ybar)) / m
        s = (self.yy - 2 * ybar * self.sy + m * ybar * ybar) / m
        return G, C, s


def center_gram_(xx: torch.Tensor, sx: torch.Tensor, m: int, divide: bool = True) -> torch.Tensor:
    """Turn the raw Gram ΣxxT [d, d] into the centred Σ(x−μ)(x−μ)ᵀ/m in place (μ = sx/m; not
    divided by m where `divide` is False), row block by row block in float64 (≤ 64 MB of
    temporaries), so each entry is rounded once."""
    d = xx.shape[0]
    step = max(1, (8 << 20) // max(d, 1))
    s = sx.to(torch.float64)
    for lo in range(0, d, step):
        blk = xx[lo:lo + step].to(torch.float64)
        blk -= torch.outer(s[lo:lo + step], s) / m      # sx_i·sx_j is exact: the result is symmetric
        xx[lo:lo + step] = (blk / m if divide else blk).to(xx.dtype)
    return xx


def _splitmix(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def model_order(model_ids: np.ndarray, seed: int) -> np.ndarray:
    """The model ids in a seeded, order-independent random order: ascending splitmix64 of
    (model_id + (seed + 1)·golden ratio), ties by id. `fit(models=N)` uses the first N, so the
    N-model share is inside every larger one (nested) and does not depend on how the store was
    written."""
    ids = np.asarray(model_ids, dtype=np.int64)
    with np.errstate(over="ignore"):
        z = ids.astype(np.uint64) + np.uint64(seed + 1) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x5851F42D4C957F2D)
    return ids[np.lexsort((ids, _splitmix(z)))]


def split_val(model_ids: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """bool [m]: a seeded, order-independent choice of ≈ fraction of models for validation
    (a splitmix64 hash of model_id and seed), used when the store has no role='val' models."""
    z = model_ids.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(1 << 20)).astype(np.float64) < fraction * (1 << 20)
