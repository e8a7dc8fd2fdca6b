"""Compaction: merge many small batches into fewer large ones, one log commit per merge.

Workers and chunked ingestion leave one batch per write; every reader opens each file of the
snapshot, so a store ingested in thousands of small batches gets slower to read. `compact` merges
consecutive batches with the same target set, up to `max_cells` margins per merged batch, streaming
file by file (memory is bounded by one source batch). Each merged batch becomes live in the commit
that retires its sources, so readers see every model exactly once at every version; an interrupted
compaction leaves an unreferenced directory for `vacuum` and nothing else. Concurrent writers are
not blocked: a merge whose sources another commit retired meanwhile is dropped (and redone by the
next run).
"""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from . import layout as L
from . import log
from .progress import progress
from .store import TARGETS_KEY, Store
from .writer import batch_entry


def _plan_merges(batches: list[Path], max_cells: int) -> list[list[Path]]:
    runs, current, key, cells = [], [], None, 0
    for bd in batches:
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


def _merge(store: Store, sources: list[Path]) -> tuple[dict, L.StagedUnit]:
    """Write one published (not yet live) batch holding `sources` in order."""
    meta = pq.read_schema(sources[0] / "margins.parquet").metadata or {}
    targets = meta.get(TARGETS_KEY.encode(), b"").decode()
    unit = L.StagedUnit(store.root, L.BATCHES)
    models = margins = 0
    try:
        with L.parquet_writer(unit.tmp / "margins.parquet", "margins", {TARGETS_KEY: targets}) as wy, \
                L.parquet_writer(unit.tmp / "models.parquet", "models") as wm:
            for bd in sources:  # model order in both files stays the same
                t = pq.read_table(bd / "models.parquet")
                wm.write_table(t)
                models += t.num_rows
                y = pq.read_table(bd / "margins.parquet")
                wy.write_table(y)
                margins += y.num_rows
        return batch_entry(unit.publish(), models, margins), unit
    except BaseException:
        unit.discard()
        raise


def compact(store: Store, max_cells: int = 32_000_000) -> dict:
    """Merge small batches; returns {'before', 'after': live batches, 'merged': sources merged,
    'skipped': merges dropped because a concurrent commit retired a source}."""
    store._require_writable()
    base = log.snapshot(store.root)
    batches = [b for b in base.paths(L.BATCHES) if b.name != L.EMPTY]
    merges = _plan_merges(batches, max_cells)
    merged = skipped = 0
    bar = progress(total=len(merges), desc="compact", unit="merge")
    for sources in merges:
        entry, unit = _merge(store, sources)
        remove = [f"{L.BATCHES}/{bd.name}" for bd in sources]
        try:
            log.commit(base, "compact", [entry], remove, info={"merged": len(sources)})
            merged += len(sources)
            base = log.snapshot(store.root)
        except log.CommitConflict:
            skipped += 1
            unit.discard()
        except BaseException:
            unit.discard()
            raise
        bar.update(1)
    bar.close()
    after = len([b for b in log.snapshot(store.root).paths(L.BATCHES) if b.name != L.EMPTY])
    return {"before": len(batches), "after": after, "merged": merged, "skipped": skipped}
