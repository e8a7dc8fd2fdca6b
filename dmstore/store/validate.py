"""Checks every incoming batch before anything is written. Each failure is an `InputError` that
names the source (argument or file), the row, and how to fix it."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import InputError

ROLES = ("fit", "val", "eval")
MODES = ("error", "append", "overwrite", "ignore")


def alpha_tolerance(alpha: float, d: int) -> float:
    """Largest |n_included/d − α| accepted by default: six binomial standard deviations (so
    Bernoulli(α) masks pass on large d), capped at 0.05, and never below 1.5 examples."""
    return max(1.5 / d, min(0.05, 6.0 * math.sqrt(alpha * (1 - alpha) / d)))


def check_alpha(alpha) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise InputError(f"alpha must be a number in (0, 1], got {alpha!r}") from None
    if not (0 < a <= 1):
        raise InputError(f"alpha must be in (0, 1], got {a}; pass the subsampling fraction, e.g. 0.5")
    return a


def check_experiment(experiment) -> str:
    if not isinstance(experiment, str) or not experiment.strip():
        raise InputError("experiment must be a non-empty name, e.g. 'cifar10-resnet9'", params=("experiment",))
    return experiment


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def masks_to_bool(masks, d: int, where: str, row0: int = 0) -> np.ndarray:
    """masks: bool-like [m, d] → bool [m, d]; refuses other widths and non-0/1 values."""
    masks = np.asarray(masks)
    if masks.ndim != 2:
        raise InputError(f"{where}: masks must be a 2-D array [models, {d}], got shape {masks.shape}")
    if masks.shape[1] != d:
        raise InputError(f"{where}: masks have {masks.shape[1]} columns but the store has d = {d} "
                         f"train examples; each mask needs one entry per train example")
    if masks.dtype == np.bool_:
        return masks
    if masks.dtype.kind in "iu":
        bad = (masks != 0) & (masks != 1)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise InputError(f"{where}: row {row0 + r}: mask value {masks[r, c]} at column {c} is not "
                             f"boolean; masks must hold only 0/1 or True/False")
        return masks.astype(bool)
    raise InputError(f"{where}: masks have dtype {masks.dtype}, which is not boolean; "
                     f"save masks as bool (or 0/1 integers)")


def check_mask_rows(n_included: np.ndarray, alpha: float, d: int, where: str, row0: int = 0,
                    tol: float | None = None) -> None:
    tol = alpha_tolerance(alpha, d) if tol is None else tol
    frac = n_included / d
    bad = np.flatnonzero(np.abs(frac - alpha) > tol)
    if bad.size:
        r = bad[0]
        raise InputError(f"{where}: row {row0 + r}: mask includes {int(n_included[r])} of {d} train "
                         f"examples (observed alpha {frac[r]:.4f}) but alpha = {alpha}; "
                         f"{bad.size} row(s) disagree (tolerance {tol:.4f}). Pass the alpha the masks were "
                         f"drawn with, or a wider alpha tolerance for Bernoulli masks")


def margins_to_f32(margins, m: int, n: int, where: str, row0: int = 0) -> np.ndarray:
    """margins: float[m, n] → float32 [m, n]; refuses NaN/±inf (naming float16 overflow) and
    values beyond float32's range."""
    margins = np.asarray(margins)
    if margins.ndim != 2 or margins.shape != (m, n):
        raise InputError(f"{where}: margins have shape {margins.shape} but {m} models x {n} targets "
                         f"were expected (one row per mask, one column per target id)")
    if margins.dtype.kind not in "fiu":
        raise InputError(f"{where}: margins have dtype {margins.dtype}; expected floating point")
    with np.errstate(over="ignore"):   # exact from float16; checked as float32 below (fast)
        out = margins.astype(np.float32, copy=False)
    if not np.isfinite(out).all():
        bad = ~np.isfinite(out)
        r, c = np.argwhere(bad)[0]
        v = margins[r, c]
        n_bad = int(bad.sum())
        if margins.dtype == np.float16 and np.isinf(v):
            raise InputError(f"{where}: row {row0 + r}, column {c}: margin is {v} — a float16 overflow "
                             f"(|margin| > 65504); {n_bad} value(s) affected. Re-export the margins "
                             f"as float32")
        if np.isfinite(v):   # finite in its own dtype, beyond float32's range
            raise InputError(f"{where}: row {row0 + r}, column {c}: margin {v} overflows float32; "
                             f"margins must fit float32")
        raise InputError(f"{where}: row {row0 + r}, column {c}: margin is {v}; {n_bad} non-finite "
                         f"value(s). Drop or re-run those models: margins must be finite")
    return out


def check_target_ids(target_ids, n_examples: int, where: str) -> np.ndarray:
    t = np.asarray(target_ids)
    if t.ndim != 1 or t.dtype.kind not in "iu":
        raise InputError(f"{where}: target_ids must be a 1-D integer array of example ids")
    bad = np.flatnonzero((t < 0) | (t >= n_examples))
    if bad.size:
        raise InputError(f"{where}: target id {int(t[bad[0]])} (position {bad[0]}) is not in the store's "
                         f"examples (ids 0..{n_examples - 1}); a store's examples are fixed when it is "
                         f"created (Store.create(…, examples=…), `dmstore init --examples`)")
    if np.unique(t).size != t.size:
        raise InputError(f"{where}: target_ids contain duplicates; each target must appear once")
    return t.astype(np.int32)


def optional_int(values, m: int, name: str, where: str):
    if values is None:
        return None
    v = np.asarray(values)
    if v.shape != (m,):
        raise InputError(f"{where}: {name} has shape {v.shape}, expected ({m},) — one per model")
    if v.dtype.kind not in "iu":
        raise InputError(f"{where}: {name} must be integers, got dtype {v.dtype}")
    return v.astype(np.int64)


def optional_float(values, m: int, name: str, where: str):
    if values is None:
        return None
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (m,):
        raise InputError(f"{where}: {name} has shape {v.shape}, expected ({m},) — one per model")
    return v


def roles_array(roles, m: int, where: str) -> np.ndarray:
    if roles is None:
        return np.full(m, "fit", dtype=object)
    if isinstance(roles, str):
        roles = [roles] * m
    r = np.asarray(roles, dtype=object)
    if r.shape != (m,):
        raise InputError(f"{where}: roles has shape {r.shape}, expected ({m},)")
    bad = [x for x in set(r.tolist()) if x not in ROLES]
    if bad:
        raise InputError(f"{where}: unknown role {bad[0]!r}; roles are {', '.join(ROLES)}")
    return r


def no_duplicates(ids: np.ndarray, name: str, where: str) -> None:
    u, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = u[counts > 1][0]
        rows = np.flatnonzero(ids == dup)[:3].tolist()
        raise InputError(f"{where}: duplicate {name} {int(dup)} at rows {rows}; {name}s must be unique")


def read_table_file(path, label: str):
    """A small user table (CSV, or Parquet by its .parquet/.pq suffix) as Arrow; a typed error
    names `label` (e.g. '--removals sets.csv') when it is missing or unreadable."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{label}: no such file")
    try:
        return pq.read_table(p) if p.suffix in (".parquet", ".pq") else pacsv.read_csv(p)
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"{label}: cannot read it ({e}); give a CSV or Parquet file") from None
