"""Compaction: merge many small batches into fewer large ones, one log commit per merge.

Workers and chunked ingestion leave one batch per write; every reader opens each file of the
snapshot, so a store ingested in thousands of small batches gets slower to read. `compact` merges
consecutive batches with the same target set, up to `max_cells` margins per merged batch, streaming
file by file (memory is bounded by one source batch). Each merged batch becomes live in the commit
that retires its sources, so readers see every model exactly once at every version; an interrupted
compaction leaves an unreferenced directory for `vacuum` and nothing else. Concurrent writers are
not blocked: a merge whose sources another commit retired meanwhile is dropped (and redone by the
next run).

`layout="target"` also rewrites every batch target-major (`layout.write_margins_target_major`):
the margins of one target, or of a block of targets, are then a few contiguous row groups per
batch, which DuckDB (min/max statistics of example_id) and `margin_matrix(targets=…)` read
alone. A merged batch is built in memory (≤ max_cells float32 margins); models keep their order.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import layout as L
from . import lease, log
from .errors import InputError
from .progress import progress
from .reader import LAYOUT_KEY
from .store import TARGETS_KEY, Store
from .writer import batch_entry


def _meta(bd: Path) -> dict:
    return pq.read_schema(bd / "margins.parquet").metadata or {}


def _layout(meta: dict) -> str:
    return "target" if meta.get(LAYOUT_KEY.encode(), b"") == b"target" else "model"


def _plan_merges(batches: list[Path], max_cells: int, layout: str = "model") -> list[list[Path]]:
    """Runs of consecutive batches with one target set, ≤ max_cells margins each; a single batch
    is a run too when it must change layout."""
    runs, current, key, cells, moves = [], [], None, 0, set()
    for bd in batches:
        if bd.name == L.EMPTY:
            continue
        meta = _meta(bd)
        if _layout(meta) != layout:
            moves.add(bd)
        targets = meta.get(TARGETS_KEY.encode(), b"").decode()
        n = pq.ParquetFile(bd / "margins.parquet").metadata.num_rows
        if current and (targets != key or cells + n > max_cells):
            runs.append(current)
            current, cells = [], 0
        current.append(bd)
        key, cells = targets, cells + n
    if current:
        runs.append(current)
    return [r for r in runs if len(r) > 1 or r[0] in moves]


def _merge(store: Store, sources: list[Path], layout: str = "model") -> tuple[dict, L.StagedUnit]:
    """Write one published (not yet live) batch holding `sources` in order, in `layout`."""
    targets = _meta(sources[0]).get(TARGETS_KEY.encode(), b"").decode()
    unit = L.StagedUnit(store.root, L.BATCHES)
    models = margins = 0
    if layout == "target" or any(_layout(_meta(bd)) == "target" for bd in sources):
        return _merge_matrix(store, sources, targets, unit, layout)
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


def _merge_matrix(store, sources, targets: str, unit, layout: str):
    """Merge through the margin matrices (any source layout), writing `layout`."""
    try:
        tables, mats = [], []
        for bd in sources:
            t = pq.read_table(bd / "models.parquet")
            tables.append(t)
            mats.append(store._batch_margins(bd, np.arange(t.num_rows), None))
        models = pa.concat_tables(tables)
        Y = np.concatenate(mats) if len(mats) > 1 else mats[0]
        del mats
        have = store.batch_targets(sources[0])
        ids = models["model_id"].to_numpy()
        if layout == "target":
            L.write_margins_target_major(unit.tmp / "margins.parquet", ids, have, Y,
                                         {TARGETS_KEY: targets, LAYOUT_KEY: "target"})
        else:
            unit.write("margins", pa.table({"model_id": np.repeat(ids, have.size),
                                            "example_id": np.tile(have.astype(np.int32), ids.size),
                                            "margin": Y.ravel()}), {TARGETS_KEY: targets})
        unit.write("models", models)
        return batch_entry(unit.publish(), models.num_rows, Y.size), unit
    except BaseException:
        unit.discard()
        raise


def compact(store: Store, max_cells: int = 32_000_000, layout: str = "model") -> dict:
    """Merge small batches (and with layout='target', rewrite every batch target-major);
    returns {'before', 'after': live batches, 'merged': sources merged, 'skipped': merges
    dropped because a concurrent commit retired a source}."""
    if layout not in ("model", "target"):
        raise InputError(f"--layout must be model or target, got {layout!r}")
    store._require_writable()
    with lease.held(store.root, "compact"):
        return _compact(store, max_cells, layout)


def _compact(store: Store, max_cells: int, layout: str) -> dict:
    base = log.snapshot(store.root)
    batches = [b for b in base.paths(L.BATCHES) if b.name != L.EMPTY]
    merges = _plan_merges(batches, max_cells, layout)
    merged = skipped = 0
    bar = progress(total=len(merges), desc="compact", unit="merge")
    for sources in merges:
        entry, unit = _merge(store, sources, layout)
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
