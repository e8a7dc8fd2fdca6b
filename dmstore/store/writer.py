"""Writing models into a store: ingestion with identities resolved against a snapshot
(`planner`) and committed through the log (optimistic concurrency).

A writer reads the latest snapshot, plans every incoming record (new | skip identical | replace |
ignore | conflict), reserves ids for new records, writes its batches privately and publishes them,
and commits them in one log commit. Commits that other writers made since its snapshot are checked
at that moment: one that added a record with an identity this writer relies on (a model id, a
natural key, a digest), or removed a batch this writer replaces, makes it re-plan from a newer
snapshot; nothing it wrote is ever visible before its commit.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import CommitConflict, ConflictError, InputError
from ..storage import lease, log
from ..storage import paths as P
from ..storage.parquet import LAYOUT_KEY, TARGETS_KEY, encode_ranges, file_metadata
from ..storage.units import StagedUnit
from . import batch as B
from .batch import ModelBatch
from .planner import Planner, identity_check
from .state import StoreState
from .validate import check_mode

MAX_RETRIES = 50


@dataclass
class IngestReport:
    """What one ingestion did. `model_ids[i]` is the stored id of incoming record i."""
    added: int = 0
    skipped: int = 0      # identical records already stored
    replaced: int = 0     # conflicting records replaced (mode='overwrite')
    ignored: int = 0      # conflicting records left as stored (mode='ignore')
    batches: int = 0
    version: int | None = None   # the log version that made them live (None: nothing written)
    model_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def summary(self) -> str:
        return (f"added {self.added}, skipped {self.skipped} identical, replaced {self.replaced}, "
                f"ignored {self.ignored} conflicting; {self.batches} batch(es) written"
                + (f" (version {self.version})" if self.version is not None else ""))


def batch_entry(path: str, models: int, margins: int) -> dict:
    return {"path": path, "relations": ["models", "margins"], "models": int(models), "margins": int(margins)}


def append(state: StoreState, experiment: str, alpha: float, masks, margins, target_ids, seeds=None,
           mask_ids=None, roles=None, *, model_ids=None, source: str = "api", source_rows=None,
           train_accuracy=None, test_accuracy=None, mode: str = "append",
           check_alpha: bool = True, commit_info: dict | None = None) -> IngestReport:
    """Ingest models: masks bool[m, d], margins float[m, n] on examples `target_ids` int[n],
    seeds int[m] (None: unknown), mask_ids int[m] (None: one mask per model), roles
    ('fit'|'val'|'eval' or [m]). Identity: `model_ids` when given, else (`source`,
    `source_rows`) when given, else content. `mode`: error|append|overwrite|ignore.
    `commit_info` is recorded in the log commit (e.g. the recipe that trained the models)."""
    state.require_writable()
    check_mode(mode)
    masks = np.asarray(masks)
    margins = np.asarray(margins)
    m = masks.shape[0] if masks.ndim else 0
    if m == 0:
        raise InputError("append(): no models given (masks has no rows)")
    n = max(1, np.asarray(target_ids).size)
    step = max(1, B.MAX_CELLS // n)  # bound the long-form margins table of one batch
    batches = []
    for lo in range(0, m, step):
        hi = min(m, lo + step)
        cut = lambda a: None if a is None else np.asarray(a)[lo:hi]  # noqa: E731
        batches.append(ModelBatch.from_arrays(
            experiment=experiment, alpha=alpha, masks=masks[lo:hi],
            margins=margins[lo:hi] if margins.ndim == 2 else margins, target_ids=target_ids,
            d=state.d, n_examples=state.n_examples, where="append()", seeds=cut(seeds),
            mask_ids=cut(mask_ids), roles=roles if isinstance(roles, str) or roles is None
            else cut(roles), model_ids=cut(model_ids), source=source,
            source_rows=cut(source_rows), train_accuracy=cut(train_accuracy),
            test_accuracy=cut(test_accuracy), row0=lo, check_alpha=check_alpha))
    return ingest(state, lambda: iter(batches), mode, commit_info=commit_info)


def ingest(state: StoreState, make_batches: Callable[[], Iterable[ModelBatch]], mode: str = "append",
           progress=None, commit_info: dict | None = None) -> IngestReport:
    """Ingest the batches `make_batches()` yields, in one pass: each batch is validated (by
    the generator), planned against one snapshot and written privately as it arrives.
    Nothing becomes visible unless every batch validates and no conflict stops it; then all
    of them become live in one commit. Only when a concurrent commit conflicts with the plan
    is the input read again (`make_batches()` is called once per attempt)."""
    state.require_writable()
    check_mode(mode)
    with lease.held(state.root, "ingest"):
        return _ingest(state, make_batches, mode, progress, commit_info)


def _ingest(state: StoreState, make_batches, mode, progress, commit_info) -> IngestReport:
    for _ in range(MAX_RETRIES):
        base = log.snapshot(state.root)
        planner = Planner(state, base, mode)
        try:
            report, add, remove, staged = _write_stream(state, make_batches, planner, progress)
        except BaseException:
            planner.release()   # a refused ingestion leaves the id counter as it was
            raise
        progress = None   # a retry does not count the models again
        if not planner.keys:
            return IngestReport()
        if not add and not remove:
            planner.release()
            return report
        check = identity_check(state.root, planner.keys, planner.plans)
        try:
            report.version = log.commit(base, "overwrite" if remove else "append", add, remove,
                                        info={"added": report.added, "replaced": report.replaced,
                                              **(commit_info or {})},
                                        check=check)
            return report
        except CommitConflict:
            pass   # a concurrent commit changed what the plan relied on: plan again
        finally:
            if report.version is None:
                for unit in staged:
                    unit.discard()
                planner.release()
    raise ConflictError(f"{state.root}: gave up after {MAX_RETRIES} attempts: other writers kept "
                        f"committing the same records; nothing was written")


def _write_stream(state: StoreState, make_batches, planner: Planner, progress):
    """Plan each batch as it arrives and write its new and replacing rows as a published (not
    yet live) unit, then copies of the live batches that lose replaced records. Returns
    (report, entries to add, paths to remove, staged units). Two units are encoded and
    written at a time (pyarrow releases the GIL), overlapping the reading of the next batch.
    On any error every unit written so far is discarded."""
    report = IngestReport()
    replaced_by_batch: dict[Path, set] = {}
    pending, staged, add, ids = [], [], [], []

    def write(unit, sub, ids, mask_ids):
        unit.write("margins", sub.margins_table(ids), {TARGETS_KEY: encode_ranges(sub.target_ids)})
        unit.write("models", sub.models_table(ids, mask_ids))
        return unit.publish(), sub.m, sub.m * sub.target_ids.size

    pool = ThreadPoolExecutor(max_workers=2)
    try:
        for b in make_batches():
            p = planner.plan_batch(b)
            act = p["action"]
            ids.append(p["ids"])
            report.skipped += int((act == "skip").sum())
            report.ignored += int((act == "ignore").sum())
            report.replaced += int((act == "replace").sum())
            report.added += int((act == "new").sum())
            for path, mid in p["replaced"]:
                replaced_by_batch.setdefault(path, set()).add(mid)
            rows = np.flatnonzero((act == "new") | (act == "replace"))
            if rows.size:
                sub = b.take(rows) if rows.size < b.m else b
                bids = p["ids"][rows]
                unit = StagedUnit(state.root, P.BATCHES)
                staged.append(unit)
                pending.append(pool.submit(write, unit, sub, bids,
                                           sub.mask_ids if sub.mask_ids is not None else bids))
                while len(pending) > 2:   # bound memory
                    add.append(batch_entry(*pending.pop(0).result()))
                report.batches += 1
            if progress is not None:
                progress(b.m)
        for f in pending:
            add.append(batch_entry(*f.result()))
        for path, mids in replaced_by_batch.items():
            entry = _rewrite_without(state, path, mids)
            if entry is not None:
                staged.append(entry[1])
                add.append(entry[0])
    except BaseException:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True)
        for unit in staged:
            unit.discard()
        raise
    pool.shutdown(wait=True)
    report.model_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    remove = [f"{P.BATCHES}/{p.name}" for p in replaced_by_batch]
    return report, add, remove, staged


def _rewrite_without(state: StoreState, batch_dir: Path, model_ids: set):
    """A published copy of a live batch without `model_ids` (overwrite): (entry, unit), or
    None when nothing of it remains. The old batch leaves in the same commit."""
    drop = pa.array(sorted(model_ids), pa.int64())
    models = pq.read_table(batch_dir / "models.parquet")
    keep_m = pc.invert(pc.is_in(models["model_id"], value_set=drop))
    if not pc.any(keep_m).as_py():
        return None
    meta = file_metadata(batch_dir / "margins.parquet")
    margins = pq.read_table(batch_dir / "margins.parquet")
    kept = margins.filter(pc.invert(pc.is_in(margins["model_id"], value_set=drop)))
    unit = StagedUnit(state.root, P.BATCHES)
    keep = {k: v for k, v in meta.items() if k in (TARGETS_KEY, LAYOUT_KEY)}
    unit.write("margins", kept, keep)   # filtering rows keeps a target-major order
    models = models.filter(keep_m)
    unit.write("models", models)
    return batch_entry(unit.publish(), models.num_rows, kept.num_rows), unit
