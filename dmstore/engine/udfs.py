"""Python UDFs on every connection dmstore opens, vectorized over Arrow batches (DuckDB's
'arrow' UDFs: one call per batch of rows, numpy and scipy inside):

    spearman(a DOUBLE[], b DOUBLE[]) -> DOUBLE         rank correlation, average ranks for ties
    kendall_tau(a DOUBLE[], b DOUBLE[]) -> DOUBLE      Kendall's tau-b (scipy's, ties handled)
    mask_of(ids INTEGER[]) -> BLOB                     the packed d-bit mask of these train ids
    bootstrap_ci(values DOUBLE[], level DOUBLE, n_boot INTEGER, seed INTEGER)
        -> STRUCT(lo DOUBLE, hi DOUBLE)                percentile bootstrap CI of the mean

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


def bootstrap_one(values, level: float, n_boot: int, seed: int) -> dict | None:
    """Percentile bootstrap CI of the mean of `values` (order-independent: sorted first)."""
    if values is None or level is None or n_boot is None:
        return None
    level, n_boot = float(level), int(n_boot)   # Spark passes its literals as decimals
    v = np.sort(np.array([float(x) for x in values if x is not None and x == x], np.float64))
    if v.size == 0 or not 0 < level < 1 or n_boot < 1:
        return None
    rng = np.random.default_rng(int(seed or 0))
    means = np.empty(int(n_boot))
    for lo in range(0, int(n_boot), 256):   # bounded memory: 256 resamples at a time
        k = min(256, int(n_boot) - lo)
        means[lo:lo + k] = v[rng.integers(0, v.size, (k, v.size))].mean(1)
    q = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return {"lo": float(q[0]), "hi": float(q[1])}


def spearman(a: pa.Array, b: pa.Array) -> pa.Array:
    return pa.array([None if p is None else spearman_one(*p) for p in pairs(a, b)], pa.float64())


def kendall_tau(a: pa.Array, b: pa.Array) -> pa.Array:
    return pa.array([None if p is None else kendall_one(*p) for p in pairs(a, b)], pa.float64())


def bootstrap_ci(values: pa.Array, level: pa.Array, n_boot: pa.Array, seed: pa.Array) -> pa.Array:
    rows = zip(values.to_pylist(), level.to_pylist(), n_boot.to_pylist(), seed.to_pylist())
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


BUILTIN = {   # name → (parameters, return type)
    "spearman": (["DOUBLE[]", "DOUBLE[]"], "DOUBLE"),
    "kendall_tau": (["DOUBLE[]", "DOUBLE[]"], "DOUBLE"),
    "bootstrap_ci": (["DOUBLE[]", "DOUBLE", "INTEGER", "INTEGER"], CI_TYPE),
    "mask_of": (["INTEGER[]"], "BLOB"),
}
DOCS = {
    "spearman": ("spearman(a, b)", "Spearman's rank correlation of two lists (average ranks for ties, as scipy)."),
    "kendall_tau": ("kendall_tau(a, b)", "Kendall's tau-b of two lists (ties handled as scipy)."),
    "bootstrap_ci": ("bootstrap_ci(values, level, n_boot, seed)",
                     "Percentile bootstrap confidence interval {lo, hi} of the mean of a list."),
    "mask_of": ("mask_of(ids)", "The packed mask (BLOB) of a list of train ids, for dm_predict on any subset."),
}


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
    fns = {"spearman": spearman, "kendall_tau": kendall_tau, "bootstrap_ci": bootstrap_ci, "mask_of": mask_of_fn(d)}
    for name, fn in fns.items():
        params, ret = BUILTIN[name]
        con.create_function(name, fn, params, ret, type="arrow", null_handling="special")
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
