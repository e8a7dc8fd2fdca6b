"""Planning an ingestion against one snapshot: per incoming record new | skip (identical) |
replace | ignore | conflict, ids reserved for new records, and the check that makes a commit
re-plan when another writer committed one of the identities the plan relies on.

Identity of a record: its model id when given, else (source, source row) when given, else its
content digest — each within one experiment and α.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import CommitConflict, ConflictError, InputError
from ..storage import log
from ..storage import paths as P
from ..storage.units import new_unit_id, writer_lock
from .batch import ModelBatch
from .state import StoreState

_INDEX_COLUMNS = ["model_id", "experiment", "alpha", "role", "source", "source_row", "digest",
                  "mask_id"]


def index(units: list[Path], cache: dict | None = None) -> pa.Table:
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


def identity_check(root: Path, keys, plan):
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
        idx = index(units)
        if idx is None or idx.num_rows == 0:
            return
        clash = ours_ids & set(idx["model_id"].to_pylist())
        if clash:
            raise CommitConflict(f"model id {min(clash)} was committed meanwhile")
        same = [k for k, (e, a) in enumerate(zip(idx["experiment"].to_pylist(), idx["alpha"].to_pylist()))
                if e == experiment and a == alpha]
        src, srow, dig = idx["source"].to_pylist(), idx["source_row"].to_pylist(), idx["digest"].to_pylist()
        for k in same:
            if (src[k], srow[k]) in ours_src or dig[k] in ours_dig:
                raise CommitConflict("a record with the same identity was committed meanwhile")
    return check


class Planner:
    """Decides per incoming record, batch by batch against one snapshot: new | skip (identical) |
    replace | ignore, or raises (nothing has been committed; the caller discards what it wrote).
    Ids for new records are reserved in `.next_model_id` under the writer lock, batch by batch,
    so that a concurrent writer never takes them; explicit ids move it past them too."""

    def __init__(self, state: StoreState, base: log.Snapshot, mode: str):
        live = base.paths(P.BATCHES)
        cache = state.index_cache
        for gone in set(cache) - {str(p) for p in live}:
            del cache[gone]   # retired units: keep the cache to what is live
        idx = index(live, cache)
        self.root, self.mode = state.root, mode
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
        self.reserved: list[tuple[int, int]] = []   # (counter before, after) of each reservation
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

    def _counter(self) -> int:
        counter = self.root / P.NEXT_ID
        nxt = int(self.ids.max()) + 1 if self.ids.size else 0
        if counter.exists():
            try:
                nxt = max(nxt, int(counter.read_text() or 0))
            except ValueError:   # a torn or damaged counter: the stored ids bound it
                pass
        return nxt

    def _set_counter(self, value: int) -> None:
        tmp = self.root / P.TMP / f"next-id-{new_unit_id(self.root)}"
        tmp.parent.mkdir(exist_ok=True)
        tmp.write_text(str(value))
        os.replace(tmp, self.root / P.NEXT_ID)

    def _reserve(self, n: int, explicit: np.ndarray) -> np.ndarray:
        """n fresh ids (none of `explicit`, stored ids or ids another writer reserved), and the
        counter moved past them and past `explicit`."""
        with writer_lock(self.root):
            start = nxt = self._counter()
            taken = set(explicit.tolist())
            out = []
            while len(out) < n:
                if nxt not in taken:
                    out.append(nxt)
                nxt += 1
            if explicit.size:
                nxt = max(nxt, int(explicit.max()) + 1)
            self._set_counter(nxt)
            self.reserved.append((start, nxt))
        return np.asarray(out, np.int64)

    def release(self) -> None:
        """Give back the ids this plan reserved (the ingestion was refused or failed): the counter
        moves back only while no other writer reserved ids after ours, so no id is ever reused."""
        if not self.reserved:
            return
        with writer_lock(self.root):
            for start, end in reversed(self.reserved):
                if self._counter() == end:
                    self._set_counter(start)
        self.reserved.clear()
