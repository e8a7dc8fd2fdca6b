"""Compaction: merge many small batches into fewer large ones, one log commit per merge.

Workers and chunked ingestion leave one batch per write; every reader opens each file of the
snapshot, so a store ingested in thousands of small batches gets slower to read. `compact` merges
consecutive batches with the same target set, up to `max_cells` margins per merged batch, streaming
file by file (memory is bounded by one source batch). Each merged batch becomes live in the commit
that retires its sources, so readers see every model exactly once at every version; an interrupted
compaction leaves an unreferenced directory for `vacuum` and nothing else. Concurrent writers are
not blocked: a merge whose sources another commit retired meanwhile is dropped (and redone by the
next run).

`layout="target"` (the default: every datamodel read — fit blocks, per-target analytics — is by
target) also rewrites every batch target-major (`layout.write_margins_target_major`):
the margins of one target, or of a block of targets, are then a few contiguous row groups per
batch, which DuckDB (min/max statistics of example_id) and `margin_matrix(targets=…)` read
alone. A merged batch is built in memory (≤ max_cells float32 margins); models keep their order.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import CommitConflict, InputError
from ..progress import progress
from ..storage import lease, log
from ..storage import paths as P
from ..storage.parquet import LAYOUT_KEY, TARGETS_KEY, file_metadata, is_target_major, parquet_writer, \
    write_margins_target_major
from ..storage.units import StagedUnit
from .reader import batch_margins, batch_targets
from .writer import batch_entry

LAYOUTS = ("model", "target")


def _meta(bd: Path) -> dict:
    return file_metadata(bd / "margins.parquet")


def _layout(meta: dict) -> str:
    return "target" if is_target_major(meta) else "model"


def _plan_merges(batches: list[Path], max_cells: int, layout: str = "model") -> list[list[Path]]:
    """Runs of consecutive batches with one target set, ≤ max_cells margins each; a single batch
    is a run too when it must change layout."""
    runs, current, key, cells, moves = [], [], None, 0, set()
    for bd in batches:
        if bd.name == P.EMPTY:
            continue
        meta = _meta(bd)
        if _layout(meta) != layout:
            moves.add(bd)
        targets = meta.get(TARGETS_KEY, "")
        n = pq.ParquetFile(bd / "margins.parquet").metadata.num_rows
        if current and (targets != key or cells + n > max_cells):
            runs.append(current)
            current, cells = [], 0
        current.append(bd)
        key, cells = targets, cells + n
    if current:
        runs.append(current)
    return [r for r in runs if len(r) > 1 or r[0] in moves]


def _merge(store, sources: list[Path], layout: str = "model") -> tuple[dict, StagedUnit]:
    """Write one published (not yet live) batch holding `sources` in order, in `layout`."""
    targets = _meta(sources[0]).get(TARGETS_KEY, "")
    unit = StagedUnit(store.root, P.BATCHES)
    models = margins = 0
    if layout == "target" or any(_layout(_meta(bd)) == "target" for bd in sources):
        return _merge_matrix(store, sources, targets, unit, layout)
    try:
        with parquet_writer(unit.tmp / "margins.parquet", "margins", {TARGETS_KEY: targets}) as wy, \
                parquet_writer(unit.tmp / "models.parquet", "models") as wm:
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
            mats.append(batch_margins(bd, np.arange(t.num_rows), None))
        models = pa.concat_tables(tables)
        Y = np.concatenate(mats) if len(mats) > 1 else mats[0]
        del mats
        have = batch_targets(sources[0])
        ids = models["model_id"].to_numpy()
        if layout == "target":
            write_margins_target_major(unit.tmp / "margins.parquet", ids, have, Y,
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


def compact(store, max_cells: int = 32_000_000, layout: str = "target") -> dict:
    """Merge small batches (and with layout='target', rewrite every batch target-major);
    returns {'before', 'after': live batches, 'merged': sources merged, 'skipped': merges
    dropped because a concurrent commit retired a source}."""
    if layout not in LAYOUTS:
        raise InputError(f"layout must be model or target, got {layout!r}", params=("layout",))
    store.require_writable()
    with lease.held(store.root, "compact"):
        return _compact(store, max_cells, layout)


def _compact(store, max_cells: int, layout: str) -> dict:
    base = log.snapshot(store.root)
    batches = [b for b in base.paths(P.BATCHES) if b.name != P.EMPTY]
    merges = _plan_merges(batches, max_cells, layout)
    merged = skipped = 0
    bar = progress(total=len(merges), desc="compact", unit="merge")
    for sources in merges:
        entry, unit = _merge(store, sources, layout)
        remove = [f"{P.BATCHES}/{bd.name}" for bd in sources]
        try:
            log.commit(base, "compact", [entry], remove, info={"merged": len(sources)})
            merged += len(sources)
            base = log.snapshot(store.root)
        except CommitConflict:
            skipped += 1
            unit.discard()
        except BaseException:
            unit.discard()
            raise
        bar.update(1)
    bar.close()
    after = len([b for b in log.snapshot(store.root).paths(P.BATCHES) if b.name != P.EMPTY])
    return {"before": len(batches), "after": after, "merged": merged, "skipped": skipped}
