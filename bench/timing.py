"""Timing for the benchmarks: the median of repeated runs (these machines are noisy)."""
from __future__ import annotations

import statistics
import time


def timed(fn, repeats: int):
    """(median seconds over `repeats` calls of fn(), the last call's result)."""
    ts, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out
