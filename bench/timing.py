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


def options(doc: str | None, quick: dict | None = None, **spec):
    """Parsed command-line options of a benchmark. Each keyword is an option: `name=default`
    or `name=(default, help)` (`--name-with-dashes`, typed by its default; a None default takes
    text, False a flag). `quick`: the values --quick sets (a smaller run)."""
    import argparse
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, value in spec.items():
        default, text = value if isinstance(value, tuple) else (value, None)
        flag = "--" + name.replace("_", "-")
        if default is False:
            ap.add_argument(flag, action="store_true", help=text)
        else:
            ap.add_argument(flag, type=None if default is None else type(default), default=default, help=text)
    if quick:
        ap.add_argument("--quick", action="store_true", help="a small run: " + ", ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in quick.items()))
    a = ap.parse_args()
    if quick and a.quick:
        for k, v in quick.items():
            setattr(a, k, v)
    return a
