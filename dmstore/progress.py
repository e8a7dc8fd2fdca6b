"""Progress of long work: in a Jupyter notebook, tqdm.auto's widget (a bar in the cell); on stderr
tqdm's bar on a terminal; elsewhere (CI logs, nohup, SLURM)
a plain line at most every `DMSTORE_PROGRESS_SECONDS` (default 10) seconds — done/total, rate,
ETA — and a last line when the work ends. `--quiet` (or `set_quiet(True)`) silences both.

    bar = progress(total=m, desc="train digits", unit="model")
    bar.update(k); bar.close()
"""
from __future__ import annotations

import os
import sys
import time

from tqdm import tqdm

_QUIET = False


def set_quiet(quiet: bool) -> None:
    global _QUIET
    _QUIET = bool(quiet)


def quiet() -> bool:
    """Whether progress and notes on stderr are silenced (`-q`)."""
    return _QUIET


class LineProgress:
    """The non-terminal progress: a line on stderr now and then, never a bar's control codes."""

    def __init__(self, total: int, desc: str, unit: str, every: float):
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.n = 0
        self.t0 = self.last = time.monotonic()
        self.recent = [(self.t0, 0)]   # (time, n) of the last updates: the ETA's rate

    def _line(self, final: bool = False) -> None:
        now = time.monotonic()
        dt = max(now - self.t0, 1e-9)
        rate = self.n / dt
        # the ETA follows the recent rate (the last 5 updates): work that slows down as it goes,
        # such as a lambda path (small lambdas take longer), is not promised the early speed
        (t_a, n_a) = self.recent[0]
        recent = (self.n - n_a) / max(now - t_a, 1e-9) if self.n > n_a else rate
        eta = (self.total - self.n) / recent if recent > 0 and self.total else float("nan")
        tail = f"done in {dt:.0f} s" if final else (f"ETA {eta:.0f} s" if eta == eta else "ETA ?")
        pct = f" ({100 * self.n / self.total:.0f} %)" if self.total else ""
        print(f"{self.desc}: {self.n}/{self.total} {self.unit}{pct}, {rate:.1f} {self.unit}/s, {tail}",
              file=sys.stderr, flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        self.recent = (self.recent + [(now, self.n)])[-6:]
        if now - self.last >= self.every:
            self.last = now
            self._line()

    def close(self) -> None:
        if self.n:
            self._line(final=True)


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (where stderr lines would clutter the cell)."""
    shell = sys.modules.get("IPython")
    try:
        ip = shell.get_ipython() if shell is not None else None
    except Exception:   # noqa: BLE001  a broken IPython install: not a notebook
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress(total: int, desc: str, unit: str = "it", enabled: bool | None = None, leave: bool = True):
    """A progress reporter for `total` units of work. `enabled=False` (or quiet) silences it;
    None shows it (a bar on a terminal, lines elsewhere)."""
    if _QUIET or enabled is False:
        return _Silent()
    if in_notebook():
        from tqdm.auto import tqdm as auto_tqdm
        return auto_tqdm(total=total, desc=desc, unit=unit, leave=leave)
    if sys.stderr.isatty():
        return tqdm(total=total, desc=desc, unit=unit, leave=leave)
    return LineProgress(total, desc, unit, float(os.environ.get("DMSTORE_PROGRESS_SECONDS", "10")))
