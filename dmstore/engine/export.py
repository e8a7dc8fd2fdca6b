"""Exports for analysts: a relation or a read-only query's rows, streamed to a file (Parquet,
CSV, JSON, JSON lines) or a Hive-partitioned Parquet directory; never into the store."""
from __future__ import annotations

from pathlib import Path

import duckdb

from ..errors import InputError, QueryError
from ..store.state import open_state
from . import catalog
from .formats import FORMATS, write_partitioned
from .query import query_error, read_relation, stream
from .sandbox import check_read_only

EXPORT_FORMATS = tuple(f for f in FORMATS if f != "table")
SCORE_FORMATS = {".npy": "npy", ".pt": "pt"}
SCORE_LAYOUTS = ("target-major", "train-major")


def check_outside(root: Path, out) -> None:
    """Refuse an output path that is, is inside, or contains the store at `root` (resolved)."""
    root = Path(root).resolve()
    target = Path(out).resolve()
    if target == root or root in target.parents or target in root.parents:
        where = "a folder that contains the store" if target in root.parents else "inside the store"
        raise InputError(f"output {out}: that is {where} {root}; an export never writes (or, with "
                         f"overwrite, deletes) the store. Export to a path outside it", params=("out",))


def export(store, out, relation: str | None = None, sql: str | None = None, fmt: str = "parquet",
           partition_by: list[str] | None = None, params: dict | None = None, overwrite: bool = False,
           as_of: int | None = None, tables: dict | None = None, **connect_kw) -> int:
    """Write a relation (or read-only `sql`) to `out` (a file; '-' is stdout) as
    parquet|csv|json|jsonl, streaming; Parquet may be partitioned into a directory by columns
    (`overwrite` replaces a non-empty one). Refuses any output that is, is inside or contains
    the store. Returns the row count."""
    if (relation is None) == (sql is None):
        raise QueryError("give a relation or sql, not both", params=("relation", "sql"))
    if relation is not None and relation not in catalog.view_names():
        raise QueryError(f"unknown relation {relation!r}; one of {', '.join(catalog.view_names())}",
                         params=("relation",))
    if fmt not in EXPORT_FORMATS:
        raise QueryError(f"fmt must be parquet, csv, json or jsonl, got {fmt!r}", params=("fmt",))
    if partition_by and fmt != "parquet":
        raise QueryError("partition_by works with fmt parquet only", params=("partition_by", "fmt"))
    if out != "-":
        check_outside(open_state(store, "r", as_of).root, out)
    elif partition_by:
        raise QueryError("partition_by writes a directory; give a directory as out, not -", params=("partition_by",))
    if sql is not None and check_read_only(sql) != 1:
        raise QueryError("sql takes exactly one SELECT statement", params=("sql",))
    rel = read_relation(store, sql if sql is not None else f'SELECT * FROM "{relation}"', params,
                        tables, as_of, **connect_kw)
    if partition_by:
        try:
            return write_partitioned(rel, Path(out), list(partition_by), overwrite)
        except duckdb.Error as e:
            raise query_error(e, store) from None
    return stream(rel, fmt, out, store=store)


def export_scores(store, fit_id: int, out, layout: str = "target-major", as_of: int | None = None) -> tuple:
    """Write fit `fit_id`'s selected weights as a dense matrix for other attribution tools:
    target-major float32 [n_targets, d] or train-major [d, n_targets], targets in ascending id
    order, to `out` (.npy: written by blocks of targets through a memory map; .pt: a torch
    tensor). Returns (target ids int32 [n], shape)."""
    import numpy as np

    from .connect import connect
    from .weights import fit_target_ids, weight_blocks
    suffix = Path(out).suffix.lower()
    if suffix not in SCORE_FORMATS:
        raise InputError(f"output {out}: a dense score matrix is written as .npy or .pt", params=("out",))
    if layout not in SCORE_LAYOUTS:
        raise InputError(f"layout must be one of {', '.join(SCORE_LAYOUTS)}, got {layout!r}", params=("layout",))
    st = open_state(store, "r", as_of)
    check_outside(st.root, out)
    con = connect(st)
    tids = fit_target_ids(con, fit_id)
    d, n = st.d, tids.size
    shape = (n, d) if layout == "target-major" else (d, n)
    if suffix == ".npy":
        from numpy.lib.format import open_memmap
        mat = open_memmap(str(out), mode="w+", dtype=np.float32, shape=shape)
    else:
        mat = np.zeros(shape, np.float32)
    for lo, blk, W in weight_blocks(con, fit_id, d, tids):
        if layout == "target-major":
            mat[lo:lo + blk.size] = W
        else:
            mat[:, lo:lo + blk.size] = W.T
    if suffix == ".npy":
        mat.flush()
        del mat
    else:
        import torch
        torch.save(torch.from_numpy(mat), out)
    return tids, shape
