"""Python UDFs on every connection dmstore opens, vectorized over Arrow batches (DuckDB's
'arrow' UDFs: one call per batch of rows, numpy and scipy inside):

    spearman(a DOUBLE[], b DOUBLE[]) -> DOUBLE         rank correlation, average ranks for ties
    kendall_tau(a DOUBLE[], b DOUBLE[]) -> DOUBLE      Kendall's tau-b (scipy's, ties handled)
    mask_of(ids INTEGER[]) -> BLOB                     the packed d-bit mask of these train ids
    bootstrap_ci(values DOUBLE[], level DOUBLE, n_boot INTEGER, seed INTEGER)
        -> STRUCT(lo DOUBLE, hi DOUBLE)                percentile bootstrap CI of the mean
                                                       (bounded: MAX_BOOT, MAX_DRAWS, DRAW_CHUNK)

Each is declared once (`BUILTINS`), from which DuckDB, Spark (`dmstore.spark`) and the plain-DuckDB
stand-ins of `dmstore views` are derived.

NULL (or NaN) elements are dropped pairwise; a result is NULL where it is undefined (fewer than
two pairs, a constant side). Users register their own: `dmstore.connect(path, udfs=[f])`,
`dmstore query --udf module:function` — a Python UDF is the user's own code and runs with the
user's rights (the SQL sandbox limits what queries read; it does not confine Python).

A user UDF is a function with type annotations (DuckDB infers the SQL types, one call per row),
or one marked with `dmstore.engine.udfs.udf(parameters, return_type)` (vectorized: it receives
pyarrow arrays, returns one).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa

from ..errors import InputError

CI_TYPE = "STRUCT(lo DOUBLE, hi DOUBLE)"


def _rows(col) -> list:
    """The rows of a list column as float64 numpy arrays (NULL elements → NaN; a NULL row →
    None), sliced from the flat values by the offsets: no per-element Python."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks else pa.array([], pa.list_(pa.float64()))
    if pa.types.is_large_list(col.type):
        col = col.cast(pa.list_(col.type.value_type))
    flat = col.flatten() if col.offset == 0 and col.null_count == 0 else None
    if flat is None:   # sliced or with NULL rows: row by row through Arrow (still no Python floats)
        return [None if not col[i].is_valid else
                col[i].values.cast(pa.float64()).to_numpy(zero_copy_only=False) for i in range(len(col))]
    values = flat.cast(pa.float64()).fill_null(float("nan")).to_numpy(zero_copy_only=False)
    off = col.offsets.to_numpy()
    return [values[off[i]:off[i + 1]] for i in range(len(col))]


def pairs(a, b):
    """Per row: (x, y) float64 numpy arrays with pairwise-missing elements dropped, or None."""
    for x, y in zip(_rows(a), _rows(b)):
        if x is None or y is None:
            yield None
            continue
        if x.size != y.size:
            raise InputError(f"the two lists have different lengths ({x.size} and {y.size}); pair them")
        ok = ~(np.isnan(x) | np.isnan(y))
        yield x[ok], y[ok]


def _defined(x, y) -> bool:
    return x.size >= 2 and np.ptp(x) > 0 and np.ptp(y) > 0


def rank_average(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, ties share their mean rank), as scipy.stats.rankdata."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    first = np.r_[True, xs[1:] != xs[:-1]]
    ids = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    counts = np.diff(np.r_[starts, x.size])
    avg = starts + (counts + 1) / 2.0
    out = np.empty(x.size)
    out[order] = avg[ids]
    return out


def spearman_one(x: np.ndarray, y: np.ndarray) -> float | None:
    if not _defined(x, y):
        return None
    return float(np.corrcoef(rank_average(x), rank_average(y))[0, 1])


def kendall_one(x: np.ndarray, y: np.ndarray) -> float | None:
    if not _defined(x, y):
        return None
    from scipy.stats import kendalltau
    return float(kendalltau(x, y).statistic)


MAX_BOOT = 100_000            # resamples one bootstrap_ci call may ask for
MAX_DRAWS = 2_000_000_000    # resamples x values: about 10 s of work on one core
DRAW_CHUNK = 1 << 22         # values drawn at a time: 32 MB of indices, whatever the list length


def bootstrap_one(values, level: float, n_boot: int, seed: int) -> dict | None:
    """Percentile bootstrap CI of the mean of `values` (order-independent: sorted first).
    Resamples are drawn in chunks of at most DRAW_CHUNK indices, so memory stays ~32 MB for any
    list; `n_boot` ≤ MAX_BOOT and n_boot·len(values) ≤ MAX_DRAWS (an InputError past either)."""
    if values is None or level is None or n_boot is None:
        return None
    level, n_boot = float(level), int(n_boot)   # Spark passes its literals as decimals
    if n_boot > MAX_BOOT:
        raise InputError(f"bootstrap_ci: n_boot {n_boot} is above the limit of {MAX_BOOT:,} resamples; "
                         f"1,000 to 10,000 give a stable 95 % interval")
    v = np.sort(np.asarray(values, np.float64) if isinstance(values, np.ndarray) else
                np.array([float(x) for x in values if x is not None], np.float64))
    v = v[~np.isnan(v)]
    if v.size == 0 or not 0 < level < 1 or n_boot < 1:
        return None
    if n_boot * v.size > MAX_DRAWS:
        raise InputError(f"bootstrap_ci: {n_boot:,} resamples of {v.size:,} values draw {n_boot * v.size:,} "
                         f"values, above the limit of {MAX_DRAWS:,}; use fewer resamples (n_boot) or sample "
                         f"the list first")
    rng = np.random.default_rng(int(seed or 0))
    means = np.empty(n_boot)
    per = max(1, DRAW_CHUNK // v.size)           # whole resamples per chunk
    for lo in range(0, n_boot, per):
        k = min(per, n_boot - lo)
        if v.size <= DRAW_CHUNK:
            means[lo:lo + k] = v[rng.integers(0, v.size, (k, v.size))].mean(1)
            continue
        for j in range(k):                         # one resample longer than a chunk: summed by chunks
            total = 0.0
            for c in range(0, v.size, DRAW_CHUNK):
                total += v[rng.integers(0, v.size, min(DRAW_CHUNK, v.size - c))].sum()
            means[lo + j] = total / v.size
    q = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return {"lo": float(q[0]), "hi": float(q[1])}


def spearman(a: pa.Array, b: pa.Array) -> pa.Array:
    return pa.array([None if p is None else spearman_one(*p) for p in pairs(a, b)], pa.float64())


def kendall_tau(a: pa.Array, b: pa.Array) -> pa.Array:
    return pa.array([None if p is None else kendall_one(*p) for p in pairs(a, b)], pa.float64())


def bootstrap_ci(values: pa.Array, level: pa.Array, n_boot: pa.Array, seed: pa.Array) -> pa.Array:
    rows = zip(_rows(values), level.to_pylist(), n_boot.to_pylist(), seed.to_pylist())
    return pa.array([bootstrap_one(*r) for r in rows], pa.struct([("lo", pa.float64()), ("hi", pa.float64())]))


def mask_of_fn(d: int):
    """mask_of for a store of d train examples: train ids → np.packbits of the d-bit mask."""
    width = (d + 7) // 8

    def mask_of(ids: pa.Array) -> pa.Array:
        out = []
        for row in ids.to_pylist():
            if row is None:
                out.append(None)
                continue
            idx = np.array([i for i in row if i is not None], np.int64)
            bad = idx[(idx < 0) | (idx >= d)]
            if bad.size:
                raise InputError(f"mask_of: train id {int(bad[0])} is not a train example (0..{d - 1})")
            bits = np.zeros(d, bool)
            bits[idx] = True
            out.append(np.packbits(bits).tobytes() if width else b"")
        return pa.array(out, pa.binary())
    return mask_of


def _spearman_row(a, b):
    p = next(pairs(pa.array([a]), pa.array([b]))) if a is not None and b is not None else None
    return None if p is None else spearman_one(*p)


def _kendall_row(a, b):
    p = next(pairs(pa.array([a]), pa.array([b]))) if a is not None and b is not None else None
    return None if p is None else kendall_one(*p)


def _mask_of_row(d: int):
    fn = mask_of_fn(d)
    return lambda ids: None if ids is None else fn(pa.array([ids], pa.list_(pa.int64())))[0].as_py()


@dataclass(frozen=True)
class Builtin:
    """One built-in UDF, declared once: DuckDB registers `arrow(d)` (vectorized over Arrow
    batches), Spark `row(d)` (plain Python values) with `spark_type`; a plain DuckDB gets a
    NULL stand-in of its return type (`dmstore views`)."""
    name: str
    params: tuple          # ((argument, DuckDB type), …)
    returns: str           # DuckDB type
    spark_type: str        # Spark DDL type
    doc: str
    arrow: Callable        # d → vectorized function
    row: Callable          # d → row function

    @property
    def signature(self) -> str:
        return f"{self.name}({', '.join(a for a, _ in self.params)})"

    def standin(self) -> str:
        """A plain-DuckDB macro returning NULL of this UDF's type."""
        return f"CREATE OR REPLACE MACRO {self.name}({', '.join(a for a, _ in self.params)}) AS NULL::{self.returns};"


BUILTINS = {b.name: b for b in (
    Builtin("spearman", (("a", "DOUBLE[]"), ("b", "DOUBLE[]")), "DOUBLE", "double",
            "Spearman's rank correlation of two lists (average ranks for ties, as scipy).",
            lambda d: spearman, lambda d: _spearman_row),
    Builtin("kendall_tau", (("a", "DOUBLE[]"), ("b", "DOUBLE[]")), "DOUBLE", "double",
            "Kendall's tau-b of two lists (ties handled as scipy).", lambda d: kendall_tau, lambda d: _kendall_row),
    Builtin("bootstrap_ci", (("values", "DOUBLE[]"), ("level", "DOUBLE"), ("n_boot", "INTEGER"), ("seed", "INTEGER")),
            CI_TYPE, "struct<lo:double,hi:double>",
            f"Percentile bootstrap confidence interval {{lo, hi}} of the mean of a list (n_boot <= {MAX_BOOT:,}).",
            lambda d: bootstrap_ci, lambda d: bootstrap_one),
    Builtin("mask_of", (("ids", "INTEGER[]"),), "BLOB", "binary",
            "The packed mask (BLOB) of a list of train ids, for dm_predict on any subset.", mask_of_fn, _mask_of_row),
)}


def udf(parameters: list[str], return_type: str):
    """Mark a vectorized user UDF: it receives pyarrow arrays (one per parameter) and returns
    one, with these DuckDB types (e.g. ['DOUBLE[]'], 'DOUBLE')."""
    def mark(fn):
        fn.dmstore_udf = (list(parameters), return_type)
        return fn
    return mark


def load_udf(spec):
    """A user UDF: a callable, or 'module:function'."""
    if callable(spec):
        return spec
    mod, sep, attr = str(spec).partition(":")
    if not sep:
        raise InputError(f"udfs entry {spec!r}: give module:function", params=("udfs",))
    try:
        fn = getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as e:
        raise InputError(f"udfs entry {spec!r} cannot be loaded: {e}", params=("udfs",)) from None
    if not callable(fn):
        raise InputError(f"udfs entry {spec!r} is not a function", params=("udfs",))
    return fn


def register(con, d: int, extra=()) -> None:
    """Create the built-in UDFs (mask_of for d train examples) and the user's `extra` ones on `con`."""
    for b in BUILTINS.values():
        con.create_function(b.name, b.arrow(d), [t for _, t in b.params], b.returns, type="arrow",
                            null_handling="special")
    for spec in extra:
        fn = load_udf(spec)
        name = fn.__name__
        try:
            if hasattr(fn, "dmstore_udf"):
                params, ret = fn.dmstore_udf
                con.create_function(name, fn, params, ret, type="arrow")
            else:
                con.create_function(name, fn)
        except Exception as e:   # noqa: BLE001  DuckDB reports missing annotations in several ways
            raise InputError(f"udf {name}: cannot register it ({str(e).strip()}); annotate its parameters and "
                             f"return type, or mark it with dmstore.engine.udfs.udf(parameters, return_type)",
                             params=("udfs",)) from None
