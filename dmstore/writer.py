"""Writing a store: ingestion with identities resolved against a snapshot and committed through
the log (optimistic concurrency), and `commit_unit` for fits and analyses.

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

from . import layout as L
from . import lease, log
from .batch import ModelBatch, encode_ranges
from .errors import ConflictError, InputError
from .reader import LAYOUT_KEY, TARGETS_KEY
from .validate import check_mode

_INDEX_COLUMNS = ["model_id", "experiment", "alpha", "role", "source", "source_row", "digest",
                  "mask_id"]
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


def _index(units: list[Path], cache: dict | None = None) -> pa.Table:
    """Identity columns of every model in `units` (batch directories), plus the unit's path.
    Units never change once written, so `cache` (path → table) makes repeated ingestion from
    one process read only the units that are new since its last call."""
    parts = []
    for bd in units:
        t = None if cache is None else cache.get(str(bd))
        if t is None:
            t = pq.read_table(bd / "models.parquet", columns=_INDEX_COLUMNS)
            t = t.append_column("batch", pa.array([str(bd)] * t.num_rows, pa.string()))
            if cache is not None:
                cache[str(bd)] = t
        parts.append(t)
    return pa.concat_tables(parts) if parts else None


class Writer:
    """Write methods of `Store` (mixed in); needs `root`, `d`, `n_examples`, `_require_writable`
    and `_index_cache` (a dict: identity tables of the units this store has read)."""

    def append(self, experiment: str, alpha: float, masks, margins, target_ids, seeds=None,
               mask_ids=None, roles=None, *, model_ids=None, source: str = "api", source_rows=None,
               train_accuracy=None, test_accuracy=None, mode: str = "append",
               check_alpha: bool = True, commit_info: dict | None = None) -> IngestReport:
        """Ingest models: masks bool[m, d], margins float[m, n] on examples `target_ids` int[n],
        seeds int[m] (None: unknown), mask_ids int[m] (None: one mask per model), roles
        ('fit'|'val'|'eval' or [m]). Identity: `model_ids` when given, else (`source`,
        `source_rows`) when given, else content. `mode`: error|append|overwrite|ignore.
        `commit_info` is recorded in the log commit (e.g. the recipe that trained the models)."""
        self._require_writable()
        check_mode(mode)
        masks = np.asarray(masks)
        margins = np.asarray(margins)
        m = masks.shape[0] if masks.ndim else 0
        if m == 0:
            raise InputError("append(): no models given (masks has no rows)")
        n = max(1, np.asarray(target_ids).size)
        step = max(1, L.MAX_CELLS // n)  # bound the long-form margins table of one batch
        batches = []
        for lo in range(0, m, step):
            hi = min(m, lo + step)
            cut = lambda a: None if a is None else np.asarray(a)[lo:hi]  # noqa: E731
            batches.append(ModelBatch.from_arrays(
                experiment=experiment, alpha=alpha, masks=masks[lo:hi],
                margins=margins[lo:hi] if margins.ndim == 2 else margins, target_ids=target_ids,
                d=self.d, n_examples=self.n_examples, where="append()", seeds=cut(seeds),
                mask_ids=cut(mask_ids), roles=roles if isinstance(roles, str) or roles is None
                else cut(roles), model_ids=cut(model_ids), source=source,
                source_rows=cut(source_rows), train_accuracy=cut(train_accuracy),
                test_accuracy=cut(test_accuracy), row0=lo, check_alpha=check_alpha))
        return self.ingest(lambda: iter(batches), mode, commit_info=commit_info)

    def ingest(self, make_batches: Callable[[], Iterable[ModelBatch]], mode: str = "append",
               progress=None, commit_info: dict | None = None) -> IngestReport:
        """Ingest the batches `make_batches()` yields, in one pass: each batch is validated (by
        the generator), planned against one snapshot and written privately as it arrives.
        Nothing becomes visible unless every batch validates and no conflict stops it; then all
        of them become live in one commit. Only when a concurrent commit conflicts with the plan
        is the input read again (`make_batches()` is called once per attempt)."""
        self._require_writable()
        check_mode(mode)
        with lease.held(self.root, "ingest"):
            return self._ingest(make_batches, mode, progress, commit_info)

    def _ingest(self, make_batches, mode, progress, commit_info) -> IngestReport:
        for _ in range(MAX_RETRIES):
            base = log.snapshot(self.root)
            planner = _Planner(self, base, mode)
            report, add, remove, staged = self._write_stream(make_batches, planner, progress)
            progress = None   # a retry does not count the models again
            if not planner.keys:
                return IngestReport()
            if not add and not remove:
                return report
            check = _identity_check(self.root, planner.keys, planner.plans)
            try:
                report.version = log.commit(base, "overwrite" if remove else "append", add, remove,
                                            info={"added": report.added, "replaced": report.replaced,
                                                  **(commit_info or {})},
                                            check=check)
                return report
            except log.CommitConflict:
                pass   # a concurrent commit changed what the plan relied on: plan again
            finally:
                if report.version is None:
                    for unit in staged:
                        unit.discard()
        raise ConflictError(f"{self.root}: gave up after {MAX_RETRIES} attempts: other writers kept "
                            f"committing the same records; nothing was written")

    def _write_stream(self, make_batches, planner: "_Planner", progress):
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
                    unit = L.StagedUnit(self.root, L.BATCHES)
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
                entry = self._rewrite_without(path, mids)
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
        remove = [f"{L.BATCHES}/{p.name}" for p in replaced_by_batch]
        return report, add, remove, staged

    def _rewrite_without(self, batch_dir: Path, model_ids: set):
        """A published copy of a live batch without `model_ids` (overwrite): (entry, unit), or
        None when nothing of it remains. The old batch leaves in the same commit."""
        drop = pa.array(sorted(model_ids), pa.int64())
        models = pq.read_table(batch_dir / "models.parquet")
        keep_m = pc.invert(pc.is_in(models["model_id"], value_set=drop))
        if not pc.any(keep_m).as_py():
            return None
        meta = pq.read_schema(batch_dir / "margins.parquet").metadata or {}
        margins = pq.read_table(batch_dir / "margins.parquet")
        kept = margins.filter(pc.invert(pc.is_in(margins["model_id"], value_set=drop)))
        unit = L.StagedUnit(self.root, L.BATCHES)
        keep = {k.decode(): v.decode() for k, v in meta.items() if k.decode() in (TARGETS_KEY, LAYOUT_KEY)}
        unit.write("margins", kept, keep)   # filtering rows keeps a target-major order
        models = models.filter(keep_m)
        unit.write("models", models)
        return batch_entry(unit.publish(), models.num_rows, kept.num_rows), unit


def _identity_check(root: Path, keys, plan):
    """A check for `log.commit`: raises CommitConflict when a commit made since the writer's
    snapshot added a model with one of the ids this writer writes, or (same experiment and α)
    one of its natural keys or digests."""
    experiment, alpha = keys[0][0], keys[0][1]
    ours_ids, ours_src, ours_dig = set(), set(), set()
    for (_, _, mids, source, srows, digests), p in zip(keys, plan):
        w = (p["action"] == "new") | (p["action"] == "replace")
        ours_ids.update(p["ids"][w].tolist())
        if mids is None and srows is not None:
            ours_src.update((source, int(r)) for r in np.asarray(srows)[w])
        elif mids is None:
            ours_dig.update(d for d, keep in zip(digests, w) if keep)

    def check(commit: dict) -> None:
        units = [root / e["path"] for e in commit.get("add", []) if "models" in e.get("relations", [])]
        idx = _index(units)
        if idx is None or idx.num_rows == 0:
            return
        clash = ours_ids & set(idx["model_id"].to_pylist())
        if clash:
            raise log.CommitConflict(f"model id {min(clash)} was committed meanwhile")
        same = [k for k, (e, a) in enumerate(zip(idx["experiment"].to_pylist(), idx["alpha"].to_pylist()))
                if e == experiment and a == alpha]
        src, srow, dig = idx["source"].to_pylist(), idx["source_row"].to_pylist(), idx["digest"].to_pylist()
        for k in same:
            if (src[k], srow[k]) in ours_src or dig[k] in ours_dig:
                raise log.CommitConflict("a record with the same identity was committed meanwhile")
    return check


def commit_unit(store, prefix: str, tables: dict, operation: str, entry: dict | None = None,
                info: dict | None = None, check=None, name: str | None = None,
                base: log.Snapshot | None = None) -> int:
    """Write `tables` (kind → Arrow table) as one unit under `prefix` (`fits`, `analyses`) and
    make it live in one commit after snapshot `base` (default: the latest); returns the version.
    `check` as in `log.commit` (a conflict removes the unit and re-raises). `name` prefixes the
    unit's directory name."""
    with lease.held(store.root, operation):
        base = log.snapshot(store.root) if base is None else base
        unit = L.StagedUnit(store.root, prefix, name)
        try:
            for kind, t in tables.items():
                unit.write(kind, t)
            path = unit.publish()
        except BaseException:
            unit.discard()
            raise
        e = {"path": path, "relations": list(tables), **(entry or {})}
        try:
            return log.commit(base, operation, [e], info=info, check=check)
        except BaseException:
            unit.discard()
            raise


def commit_fit(store, tables, info: dict) -> int:
    """Commit one fit unit: `tables(fit_id)` gives its tables for a fit id, reserved first
    (`sharding.reserve_fit_id`: unique across concurrent fits and sharded runs). Returns the fit id."""
    from .sharding import reserve_fit_id
    for _ in range(MAX_RETRIES):
        fit_id = reserve_fit_id(store.root, "fit")

        def check(commit, fit_id=fit_id):   # a writer of an older dmstore that reserves no ids
            if any(e.get("fit_id") == fit_id for e in commit.get("add", [])):
                raise log.CommitConflict(f"fit id {fit_id} was committed meanwhile")
        try:
            commit_unit(store, L.FITS, tables(fit_id), "fit", {"fit_id": fit_id},
                        info={"fit_id": fit_id, **info}, check=check, name=f"{fit_id:08d}")
            return fit_id
        except log.CommitConflict:
            continue
    raise ConflictError(f"{store.root}: gave up after {MAX_RETRIES} attempts to take a fit id")


class _Planner:
    """Decides per incoming record, batch by batch against one snapshot: new | skip (identical) |
    replace | ignore, or raises (nothing has been committed; the caller discards what it wrote).
    Ids for new records are reserved in `.next_model_id` under the writer lock, batch by batch,
    so that a concurrent writer never takes them; explicit ids move it past them too."""

    def __init__(self, store, base: log.Snapshot, mode: str):
        live = base.paths(L.BATCHES)
        cache = store._index_cache
        for gone in set(cache) - {str(p) for p in live}:
            del cache[gone]   # retired units: keep the cache to what is live
        idx = _index(live, cache)
        self.root, self.mode = store.root, mode
        self.ids = idx["model_id"].to_numpy()
        self.dig = idx["digest"].to_pylist()
        self.bat = idx["batch"].to_pylist()
        self.exp = idx["experiment"].to_pylist()
        self.alp = idx["alpha"].to_numpy()
        self.src = idx["source"].to_pylist()
        self.srow = idx["source_row"].to_pylist()
        self.by_id = {int(i): k for k, i in enumerate(self.ids)}
        self.keys, self.plans = [], []   # per batch: identity key, plan (for the commit check)
        self.seen_ids, self.seen_rows, self.auto_ids = set(), set(), set()
        self.same = None

    def _index_for(self, experiment, alpha):
        """Natural-key and digest lookups of the stored records of one experiment and α."""
        same = [k for k in range(len(self.ids)) if self.exp[k] == experiment and self.alp[k] == alpha]
        by_src = {(self.src[k], self.srow[k]): k for k in same if self.srow[k] is not None}
        by_dig = {self.dig[k]: k for k in same}
        return same, by_src, by_dig

    def _unique(self, mids, source, srows) -> None:
        """Model ids and source rows are unique across the whole input."""
        if mids is not None:
            for i in mids.tolist():
                if i in self.seen_ids:
                    raise InputError(f"duplicate model id {i} in the input; model ids must be unique")
                if i in self.auto_ids:
                    raise InputError(f"model id {i} is given to a record and was assigned to an "
                                     f"earlier record of this input without an id; give every "
                                     f"record an id or none")
                self.seen_ids.add(i)
        if srows is not None:
            for r in srows.tolist():
                if (source, r) in self.seen_rows:
                    raise InputError(f"duplicate source row {r} in the input")
                self.seen_rows.add((source, r))

    def plan_batch(self, b: ModelBatch) -> dict:
        key = (b.experiment, b.alpha, b.model_ids, b.source, b.source_rows, b.digests)
        if self.same is None:   # one ingestion is one experiment and α
            self.experiment, self.alpha = b.experiment, b.alpha
            self.same, self.by_src, self.by_dig = self._index_for(b.experiment, b.alpha)
        self._unique(b.model_ids, b.source, b.source_rows)
        mids, srows, digests = b.model_ids, b.source_rows, b.digests
        ids, exp, alp, dig, bat = self.ids, self.exp, self.alp, self.dig, self.bat
        m = len(digests)
        action = np.empty(m, dtype=object)
        out_ids = np.empty(m, np.int64)
        replaced, conflicts, want_auto = [], [], []
        for i in range(m):
            if mids is not None:
                k = self.by_id.get(int(mids[i]))
                if k is not None and (exp[k] != b.experiment or alp[k] != b.alpha):
                    conflicts.append(f"model id {int(mids[i])} is stored under experiment "
                                     f"{exp[k]!r} alpha {alp[k]} (give other ids, or leave "
                                     f"model_id out and let the store assign ids)")
                    action[i], out_ids[i] = "conflict", mids[i]
                    continue
            elif srows is not None:
                k = self.by_src.get((b.source, int(srows[i])))
            else:
                k = self.by_dig.get(digests[i])
            if k is None:
                action[i] = "new"
                if mids is not None:
                    out_ids[i] = mids[i]
                else:
                    want_auto.append(i)
            elif dig[k] == digests[i]:
                action[i], out_ids[i] = "skip", ids[k]
            else:
                out_ids[i] = ids[k]
                if self.mode == "overwrite":
                    action[i] = "replace"
                    replaced.append((Path(bat[k]), int(ids[k])))
                elif self.mode == "ignore":
                    action[i] = "ignore"
                else:
                    action[i] = "conflict"
                    what = (f"model id {int(ids[k])}" if mids is not None else
                            f"{b.source} row {int(srows[i])} (model id {int(ids[k])})")
                    conflicts.append(f"{what} is stored with different content")
        if conflicts:
            raise ConflictError(f"{len(conflicts)} conflicting record(s) in one batch of "
                                f"the input, e.g. {conflicts[0]}; nothing was written. Use mode "
                                f"'overwrite' to replace the stored records or 'ignore' to keep them")
        writes = (action == "new") | (action == "replace")
        if self.mode == "error" and self.same and writes.any():
            raise ConflictError(f"experiment {b.experiment!r} at alpha {b.alpha} already holds "
                                f"{len(self.same)} models and mode is 'error'; nothing was written. "
                                f"Use mode 'append' to add to it")
        explicit = mids[writes] if mids is not None else np.zeros(0, np.int64)
        if want_auto or explicit.size:
            out_ids[want_auto] = self._reserve(len(want_auto), explicit)
            self.auto_ids.update(out_ids[want_auto].tolist())
        plan = {"action": action, "ids": out_ids, "replaced": replaced}
        self.keys.append(key)
        self.plans.append(plan)
        return plan

    def _reserve(self, n: int, explicit: np.ndarray) -> np.ndarray:
        """n fresh ids (none of `explicit`, stored ids or ids another writer reserved), and the
        counter moved past them and past `explicit`."""
        with L.writer_lock(self.root):
            counter = self.root / L.NEXT_ID
            nxt = int(self.ids.max()) + 1 if self.ids.size else 0
            if counter.exists():
                nxt = max(nxt, int(counter.read_text() or 0))
            taken = set(explicit.tolist())
            out = []
            while len(out) < n:
                if nxt not in taken:
                    out.append(nxt)
                nxt += 1
            if explicit.size:
                nxt = max(nxt, int(explicit.max()) + 1)
            tmp = self.root / L.TMP / f"next-id-{L.new_unit_id(self.root)}"
            tmp.write_text(str(nxt))
            L.os.replace(tmp, counter)
        return np.asarray(out, np.int64)
