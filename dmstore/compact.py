"""Compaction: merge many small batch directories into fewer large ones (single writer).

Workers and chunked ingestion leave one directory per batch; readers and writers both walk
them, so a store ingested in thousands of small batches gets slower to open. `compact` merges
consecutive batches with the same target set, up to `max_cells` margins per merged batch,
streaming row group by row group (memory is bounded by one source batch). It holds the writer
lock throughout; each merged batch is committed before its sources are removed, so a reader may
briefly see a model twice, never not at all.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from . import layout as L
from .store import TARGETS_KEY, Store


def _plan_merges(store: Store, max_cells: int) -> list[list[Path]]:
    runs, current, key, cells = [], [], None, 0
    for bd in store._batch_dirs():
        if bd.name == L.EMPTY:
            continue
        meta = pq.read_schema(bd / "margins.parquet").metadata or {}
        targets = meta.get(TARGETS_KEY.encode(), b"").decode()
        n = pq.ParquetFile(bd / "margins.parquet").metadata.num_rows
        if current and (targets != key or cells + n > max_cells):
            runs.append(current)
            current, cells = [], 0
        current.append(bd)
        key, cells = targets, cells + n
    if current:
        runs.append(current)
    return [r for r in runs if len(r) > 1]


def compact(store: Store, max_cells: int = 32_000_000) -> dict:
    """Merge small batches; returns {'before': n_batches, 'after': n_batches, 'merged': k}."""
    store._require_writable()
    with L.writer_lock(store.root):
        before = len([b for b in store._batch_dirs() if b.name != L.EMPTY])
        merges = _plan_merges(store, max_cells)
        for sources in merges:
            meta = pq.read_schema(sources[0] / "margins.parquet").metadata or {}
            targets = meta.get(TARGETS_KEY.encode(), b"").decode()
            unit = L.StagedUnit(store.root, L.BATCHES)
            try:
                with L.parquet_writer(unit.tmp / "margins.parquet", "margins", {TARGETS_KEY: targets}) as wy, \
                        L.parquet_writer(unit.tmp / "models.parquet", "models") as wm:
                    for bd in sources:  # model order in both files stays the same
                        wm.write_table(pq.read_table(bd / "models.parquet"))
                        wy.write_table(pq.read_table(bd / "margins.parquet"))
                unit.commit()
            except BaseException:
                unit.abort()
                raise
            for bd in sources:
                L.remove_unit(store.root, bd)
        after = len([b for b in store._batch_dirs() if b.name != L.EMPTY])
    return {"before": before, "after": after, "merged": sum(len(m) for m in merges)}
