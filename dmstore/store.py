"""The experiment store: a plain directory of Parquet files plus a version-stamped manifest.

    store = Store.create("runs", train_size=1347, test_size=450)
    store.append("mlp", 0.5, masks, margins, target_ids, seeds=seeds)   # bool[m, d], float[m, n]
    X = store.mask_matrix("mlp", 0.5, role="fit")                      # bool[m, d]
    Y = store.margin_matrix("mlp", 0.5, role="fit", targets=test_ids)   # float32[m, n]
    con = store.connect()                                               # DuckDB, views from sql/

Writers take the store's lock only to resolve identities and commit; each batch directory is
written under `.tmp/` and renamed into `batches/` (see `layout`). Readers never lock.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from . import __version__
from . import layout as L
from .batch import ModelBatch, decode_ranges, encode_ranges
from .errors import ConflictError, InputError, NotFoundError, StoreError
from .schema import arrow_schema, format_version
from .validate import check_mode

TARGETS_KEY = "dmstore.targets"
_INDEX_COLUMNS = ["model_id", "experiment", "alpha", "role", "source", "source_row", "digest",
                  "mask_id"]


@dataclass
class IngestReport:
    """What one ingestion did. `model_ids[i]` is the stored id of incoming record i."""
    added: int = 0
    skipped: int = 0      # identical records already stored
    replaced: int = 0     # conflicting records replaced (mode='overwrite')
    ignored: int = 0      # conflicting records left as stored (mode='ignore')
    batches: int = 0
    model_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    units: list = field(default_factory=list, repr=False)   # staged, not yet committed

    def summary(self) -> str:
        return (f"added {self.added}, skipped {self.skipped} identical, replaced {self.replaced}, "
                f"ignored {self.ignored} conflicting; {self.batches} batch(es) written")


def _roles(role) -> list[str] | None:
    if role is None:
        return None
    return [role] if isinstance(role, str) else list(role)


def _fixed_width_bytes(col: pa.ChunkedArray | pa.Array, width: int) -> np.ndarray:
    """A binary column of equal-length values → uint8 [len, width] without per-row Python."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks else pa.array([], pa.binary())
    if len(col) == 0:
        return np.zeros((0, width), np.uint8)
    fixed = col.cast(pa.binary(width))
    data = np.frombuffer(fixed.buffers()[1], np.uint8)
    return data[fixed.offset * width:(fixed.offset + len(fixed)) * width].reshape(len(fixed), width)


class Store:
    """An opened store directory. Use `Store.create` or `Store.open`, not the constructor."""

    def __init__(self, root: Path, mode: str, manifest: dict):
        self.root = Path(root)
        self.mode = mode
        self.manifest = manifest
        self._examples: pa.Table | None = None

    # ------------------------------------------------------------------ create / open
    @classmethod
    def create(cls, path, train_size: int | None = None, test_size: int = 0, examples=None,
               exist_ok: bool = False) -> "Store":
        """Create a store. `examples`: a CSV/Parquet path or an Arrow table with `example_id, split,
        label[, group_key, …]`; without it, train rows 0..D-1 and test rows D..D+N-1 are generated.
        Train examples must hold ids 0..d-1: mask bit i is example i."""
        root = Path(path)
        if (root / L.MANIFEST).exists():
            if exist_ok:
                return cls.open(root, "a")
            raise StoreError(f"{root}: a store already exists here; open it, or choose a new path")
        if root.exists() and any(root.iterdir()):
            raise StoreError(f"{root}: directory is not empty and holds no store; choose a new path")
        table = _examples_table(examples, train_size, test_size)
        d = int(pc.sum(pc.equal(table["split"], "train")).as_py() or 0)
        if train_size is not None and examples is not None and d != train_size:
            raise InputError(f"--train-size {train_size} disagrees with {d} train rows in {examples}")
        if d == 0:
            raise InputError("a store needs at least one train example (--train-size D)")
        root.mkdir(parents=True, exist_ok=True)
        try:
            for sub in (L.BATCHES, L.FITS, L.ANALYSES, L.TMP):
                (root / sub).mkdir()
            L.write_parquet(table, root / L.EXAMPLES, "examples")
            empty = root / L.BATCHES / L.EMPTY
            empty.mkdir()
            for kind in ("models", "margins"):
                L.write_parquet(arrow_schema(kind).empty_table(), empty / f"{kind}.parquet", kind,
                                {TARGETS_KEY: ""} if kind == "margins" else None)
            empty = root / L.FITS / L.EMPTY
            empty.mkdir()
            for kind in ("fit_runs", "fits", "weights", "eval_predictions"):
                L.write_parquet(arrow_schema(kind).empty_table(), empty / f"{kind}.parquet", kind)
            empty = root / L.ANALYSES / L.EMPTY
            empty.mkdir()
            for kind in ("counterfactuals", "support", "embedding_pca", "embedding_variance", "clusters"):
                L.write_parquet(arrow_schema(kind).empty_table(), empty / f"{kind}.parquet", kind)
            manifest = {
                "format": "dmstore",
                "format_version": format_version(),
                "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "created_by": f"dmstore {__version__}",
                "train_size": d,
                "n_examples": table.num_rows,
            }
            tmp = root / L.TMP / "manifest.json"
            tmp.write_text(json.dumps(manifest, indent=2) + "\n")
            os.replace(tmp, root / L.MANIFEST)   # the manifest appears last: a store is whole or absent
        except BaseException:
            if not (root / L.MANIFEST).exists():
                import shutil
                shutil.rmtree(root, ignore_errors=True)
            raise
        return cls(root, "a", manifest)

    @classmethod
    def open(cls, path, mode: str = "r") -> "Store":
        """Open an existing store read-only (`"r"`) or for appending (`"a"`)."""
        if mode not in ("r", "a"):
            raise InputError(f"mode must be 'r' or 'a', got {mode!r}")
        root = Path(path)
        mpath = root / L.MANIFEST
        if not mpath.exists():
            raise StoreError(f"{root}: not a dmstore store (no {L.MANIFEST}); create one with "
                             f"`dmstore init {root} --train-size D`")
        try:
            manifest = json.loads(mpath.read_text())
            version = int(manifest["format_version"])
        except (ValueError, KeyError, TypeError) as e:
            raise StoreError(f"{mpath}: unreadable manifest ({e})") from None
        ours = format_version()
        if version > ours:
            raise StoreError(f"{root}: store format version {version} is newer than this dmstore "
                             f"supports (format version {ours}); upgrade dmstore to read it")
        if version < ours:
            raise StoreError(f"{root}: store format version {version} is older than this dmstore's "
                             f"format version {ours}; migrate it with `dmstore migrate {root}`")
        store = cls(root, mode, manifest)
        if mode == "a":
            with L.writer_lock(root):
                L.clean_stale_temps(root)
        return store

    # ------------------------------------------------------------------ basics
    @property
    def d(self) -> int:
        """Number of train examples (mask width)."""
        return int(self.manifest["train_size"])

    @property
    def n_examples(self) -> int:
        return int(self.manifest["n_examples"])

    def examples(self) -> pa.Table:
        if self._examples is None:
            self._examples = pq.read_table(self.root / L.EXAMPLES)
        return self._examples

    def example_ids(self, split: str | None = None) -> np.ndarray:
        """int32 [k]: example ids of `split` (all when None), ascending."""
        t = self.examples()
        ids = t["example_id"].to_numpy()
        if split is not None:
            ids = ids[(t["split"].to_numpy(zero_copy_only=False) == split)]
        return np.sort(ids).astype(np.int32)

    def resolve_targets(self, spec) -> np.ndarray:
        """'test' | 'train' | 'all' | a split name | ids (list / 'a,b,c' / 'a-b') → sorted int32 ids."""
        if spec is None or (isinstance(spec, str) and spec == "all"):
            return self.example_ids()
        if isinstance(spec, str):
            splits = set(self.examples()["split"].to_pylist())
            if spec in splits:
                return self.example_ids(spec)
            try:
                ids = decode_ranges(spec.replace(" ", ""))
            except ValueError:
                raise InputError(f"targets {spec!r}: expected a split ({', '.join(sorted(splits))}), "
                                 f"'all', or ids like '0,5,10-20'") from None
        else:
            ids = np.asarray(spec, dtype=np.int64)
        bad = ids[(ids < 0) | (ids >= self.n_examples)]
        if bad.size:
            raise InputError(f"target id {int(bad[0])} is not an example of this store "
                             f"(ids 0..{self.n_examples - 1})")
        return np.unique(ids).astype(np.int32)

    def _batch_dirs(self) -> list[Path]:
        return sorted(p for p in (self.root / L.BATCHES).iterdir() if p.is_dir())

    def _require_writable(self):
        if self.mode != "a":
            raise StoreError(f"{self.root}: opened read-only; use Store.open(path, mode='a') to write")

    # ------------------------------------------------------------------ ingestion
    def append(self, experiment: str, alpha: float, masks, margins, target_ids, seeds=None,
               mask_ids=None, roles=None, *, model_ids=None, source: str = "api", source_rows=None,
               train_accuracy=None, test_accuracy=None, mode: str = "append",
               check_alpha: bool = True) -> IngestReport:
        """Ingest models: masks bool[m, d], margins float[m, n] on examples `target_ids` int[n],
        seeds int[m] (None: unknown), mask_ids int[m] (None: one mask per model), roles
        ('fit'|'val'|'eval' or [m]). Identity: `model_ids` when given, else (`source`,
        `source_rows`) when given, else content. `mode`: error|append|overwrite|ignore."""
        self._require_writable()
        check_mode(mode)
        masks = np.asarray(masks)
        margins = np.asarray(margins)
        m = masks.shape[0] if masks.ndim else 0
        n = max(1, np.asarray(target_ids).size)
        from .ingest import MAX_CELLS
        step = max(1, MAX_CELLS // n)  # bound the long-form margins table of one batch
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
        if m == 0:
            raise InputError("append(): no models given (masks has no rows)")
        return self.ingest(lambda: iter(batches), mode)

    def ingest(self, make_batches: Callable[[], Iterable[ModelBatch]], mode: str = "append",
               progress=None) -> IngestReport:
        """Ingest the batches `make_batches()` yields (called twice: once to validate and hash,
        once to write). Nothing is written unless every batch validates and no conflict stops
        it; each batch then lands atomically.

        Concurrency: identities are resolved and new ids reserved under the store's lock; the
        files are compressed and written outside it (so many writers work at once); the lock is
        taken again to check that nothing overlapping was committed meanwhile and to rename the
        batches into place. If something was, the write is redone under the lock."""
        self._require_writable()
        check_mode(mode)
        keys = []  # per batch: (experiment, alpha, model_ids, source, source_rows, digests)
        for b in make_batches():
            keys.append((b.experiment, b.alpha, b.model_ids, b.source, b.source_rows, b.digests))
        if not keys:
            return IngestReport()
        _check_unique_across(keys)
        with L.writer_lock(self.root):
            plan = self._plan(keys, mode, reserve=True)
            if any(p["replaced"] for p in plan):   # overwrite rewrites batches: single writer
                return self._write_plan(make_batches, plan, progress, commit=True)
        report = self._write_plan(make_batches, plan, progress, commit=False)
        try:
            with L.writer_lock(self.root):
                again = self._plan(keys, mode)
                if all(np.array_equal(p["action"], q["action"]) for p, q in zip(plan, again)):
                    for unit in report.units:
                        unit.commit()
                    report.units = []
                    return report
                for unit in report.units:   # another writer committed some of these records
                    unit.abort()
                report.units = []
                return self._write_plan(make_batches, self._plan(keys, mode, reserve=True), progress,
                                        commit=True)
        finally:
            for unit in report.units:
                unit.abort()

    def _write_plan(self, make_batches, plan, progress, commit: bool) -> IngestReport:
        """Write the batches' new and replacing rows as staged units (committed at once when
        `commit`, else returned in report.units for the caller to commit). Without `commit`, up
        to two units are encoded and written at a time (pyarrow releases the GIL)."""
        from concurrent.futures import ThreadPoolExecutor
        report = IngestReport(model_ids=np.concatenate([p["ids"] for p in plan]))
        replaced_by_batch: dict[Path, set] = {}
        pending, staged = [], []

        def write(unit, sub, ids, mask_ids):
            unit.write("margins", sub.margins_table(ids), {TARGETS_KEY: encode_ranges(sub.target_ids)})
            unit.write("models", sub.models_table(ids, mask_ids))
            if commit:
                unit.commit()

        pool = ThreadPoolExecutor(max_workers=1 if commit else 2)
        try:
            for b, p in zip(make_batches(), plan):
                act = p["action"]
                report.skipped += int((act == "skip").sum())
                report.ignored += int((act == "ignore").sum())
                report.replaced += int((act == "replace").sum())
                report.added += int((act == "new").sum())
                for path, mid in p["replaced"]:
                    replaced_by_batch.setdefault(path, set()).add(mid)
                rows = np.flatnonzero((act == "new") | (act == "replace"))
                if rows.size:
                    sub = b.take(rows)
                    ids = p["ids"][rows]
                    unit = L.StagedUnit(self.root, L.BATCHES)
                    staged.append(unit)
                    if not commit:
                        report.units.append(unit)
                    pending.append(pool.submit(write, unit, sub, ids, sub.mask_ids if sub.mask_ids is not None else ids))
                    while len(pending) > 2 or (commit and pending):  # bound memory (and keep order when committing)
                        pending.pop(0).result()
                    report.batches += 1
                if progress is not None:
                    progress(b.m)
            for f in pending:
                f.result()
        except BaseException:
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True)
            for unit in staged:   # a committed unit has no temp directory left: abort is a no-op
                unit.abort()
            raise
        pool.shutdown(wait=True)
        for path, mids in replaced_by_batch.items():
            self._rewrite_without(path, mids)
        return report

    def _index(self) -> pa.Table:
        """Identity columns of every stored model, plus the batch directory each lives in."""
        parts = []
        for bd in self._batch_dirs():
            t = pq.read_table(bd / "models.parquet", columns=_INDEX_COLUMNS)
            parts.append(t.append_column("batch", pa.array([str(bd)] * t.num_rows, pa.string())))
        return pa.concat_tables(parts) if parts else None

    def _plan(self, keys, mode, reserve: bool = False) -> list[dict]:
        """Decide per incoming record: new | skip (identical) | replace | ignore, or raise.
        With `reserve`, the ids given to new records are recorded in `.next_model_id` so that
        a concurrent writer (whose batches are not committed yet) never takes them."""
        idx = self._index()
        ids = idx["model_id"].to_numpy()
        dig = idx["digest"].to_pylist()
        bat = idx["batch"].to_pylist()
        exp = idx["experiment"].to_pylist()
        alp = idx["alpha"].to_numpy()
        src = idx["source"].to_pylist()
        srow = idx["source_row"].to_pylist()
        by_id = {int(i): k for k, i in enumerate(ids)}
        experiment, alpha = keys[0][0], keys[0][1]
        same = [k for k in range(len(ids)) if exp[k] == experiment and alp[k] == alpha]
        by_src = {(src[k], srow[k]): k for k in same if srow[k] is not None}
        by_dig = {dig[k]: k for k in same}
        next_id = int(ids.max()) + 1 if ids.size else 0
        counter = self.root / L.NEXT_ID
        if counter.exists():
            next_id = max(next_id, int(counter.read_text() or 0))
        for k in keys:
            if k[2] is not None and k[2].size:
                next_id = max(next_id, int(k[2].max()) + 1)
        plan, conflicts = [], []
        for experiment_b, alpha_b, mids, source, srows, digests in keys:
            m = len(digests)
            action = np.empty(m, dtype=object)
            out_ids = np.empty(m, np.int64)
            replaced = []
            for i in range(m):
                if mids is not None:
                    k = by_id.get(int(mids[i]))
                    if k is not None and (exp[k] != experiment_b or alp[k] != alpha_b):
                        conflicts.append(f"model id {int(mids[i])} is stored under experiment "
                                         f"{exp[k]!r} alpha {alp[k]}")
                        action[i], out_ids[i] = "conflict", mids[i]
                        continue
                elif srows is not None:
                    k = by_src.get((source, int(srows[i])))
                else:
                    k = by_dig.get(digests[i])
                if k is None:
                    action[i] = "new"
                    if mids is not None:
                        out_ids[i] = mids[i]
                    else:
                        out_ids[i] = next_id
                        next_id += 1
                elif dig[k] == digests[i]:
                    action[i], out_ids[i] = "skip", ids[k]
                else:
                    out_ids[i] = ids[k]
                    if mode == "overwrite":
                        action[i] = "replace"
                        replaced.append((Path(bat[k]), int(ids[k])))
                    elif mode == "ignore":
                        action[i] = "ignore"
                    else:
                        action[i] = "conflict"
                        what = (f"model id {int(ids[k])}" if mids is not None else
                                f"{source} row {int(srows[i])} (model id {int(ids[k])})")
                        conflicts.append(f"{what} is stored with different content")
            plan.append({"action": action, "ids": out_ids, "replaced": replaced})
        if conflicts:
            raise ConflictError(f"{len(conflicts)} conflicting record(s), e.g. {conflicts[0]}; "
                                f"nothing was written. Use mode 'overwrite' to replace the stored "
                                f"records or 'ignore' to keep them")
        if mode == "error" and same:
            writes = sum(int(((p["action"] == "new") | (p["action"] == "replace")).sum()) for p in plan)
            if writes:
                raise ConflictError(f"experiment {experiment!r} at alpha {alpha} already holds "
                                    f"{len(same)} models and mode is 'error'; nothing was written. "
                                    f"Use mode 'append' to add to it")
        if reserve:
            tmp = self.root / L.TMP / f"next-id-{os.getpid()}"
            tmp.write_text(str(next_id))
            os.replace(tmp, counter)
        return plan

    def _rewrite_without(self, batch_dir: Path, model_ids: set) -> None:
        """Replace a committed batch by a copy without `model_ids` (overwrite). The copy lands
        before the old batch leaves, so readers may briefly see both, never neither."""
        drop = pa.array(sorted(model_ids), pa.int64())
        models = pq.read_table(batch_dir / "models.parquet")
        meta = pq.read_schema(batch_dir / "margins.parquet").metadata or {}
        margins = pq.read_table(batch_dir / "margins.parquet")
        keep_m = pc.invert(pc.is_in(models["model_id"], value_set=drop))
        if pc.any(keep_m).as_py():
            unit = L.StagedUnit(self.root, L.BATCHES)
            unit.write("margins", margins.filter(pc.invert(pc.is_in(margins["model_id"], value_set=drop))),
                       {TARGETS_KEY: meta.get(TARGETS_KEY.encode(), b"").decode()})
            unit.write("models", models.filter(keep_m))
            unit.commit()
        L.remove_unit(self.root, batch_dir)

    # ------------------------------------------------------------------ reading
    def models(self, experiment=None, alpha=None, role=None, columns=None) -> pa.Table:
        """Rows of `models` (without masks unless asked) matching the filters, by model_id."""
        cols = columns or [c for c in arrow_schema("models").names if c != "mask"]
        parts = [self._filtered(bd, experiment, alpha, role, cols)[0] for bd in self._batch_dirs()]
        t = pa.concat_tables(parts)
        return t.take(pc.sort_indices(t["model_id"])) if "model_id" in t.column_names else t

    def _filtered(self, bd: Path, experiment, alpha, role, cols):
        need = list(dict.fromkeys(["experiment", "alpha", "role"] + list(cols)))
        t = pq.read_table(bd / "models.parquet", columns=need)
        keep = np.ones(t.num_rows, bool)
        if experiment is not None:
            keep &= t["experiment"].to_numpy(zero_copy_only=False) == experiment
        if alpha is not None:
            keep &= np.isclose(t["alpha"].to_numpy(), float(alpha), rtol=0, atol=1e-12)
        roles = _roles(role)
        if roles is not None:
            keep &= np.isin(t["role"].to_numpy(zero_copy_only=False), roles)
        rows = np.flatnonzero(keep)
        if rows.size == t.num_rows:
            return t.select(cols), rows
        return t.take(pa.array(rows)).select(cols), rows

    def model_ids(self, experiment, alpha, role=None) -> np.ndarray:
        """int64 [m]: ids of the matching models, ascending (the row order of the matrices)."""
        return self.models(experiment, alpha, role, ["model_id"])["model_id"].to_numpy()

    def _require_models(self, experiment, alpha, role):
        if not self.model_ids(experiment, alpha, role).size:
            have = self.experiments()
            raise NotFoundError(f"no models for experiment {experiment!r} alpha {alpha}"
                                + (f" role {role!r}" if role else "")
                                + ("; the store has: " + ", ".join(
                                    f"{e} @ {a}" for e, a in sorted({(r['experiment'], r['alpha'])
                                                                     for r in have}))
                                   if have else "; the store is empty"))

    def iter_chunks(self, experiment, alpha, role=None, targets=None, with_masks=True,
                    with_margins=True, max_rows: int = 4096) -> Iterator[dict]:
        """Stream the matching models batch by batch (≤ max_rows rows a chunk):
        dicts with model_ids int64[c], roles object[c], mask_ids int64[c],
        masks bool[c, d] (when with_masks) and margins float32[c, n] on `targets` (ascending)."""
        targets = None if targets is None else np.asarray(targets, np.int32)
        for bd in self._batch_dirs():
            cols = ["model_id", "role", "mask_id"] + (["mask"] if with_masks else [])
            t, rows = self._filtered(bd, experiment, alpha, role, cols)
            if not rows.size:
                continue
            Y = None
            if with_margins:
                Y = self._batch_margins(bd, rows, targets)
            packed = _fixed_width_bytes(t["mask"], (self.d + 7) // 8) if with_masks else None
            ids = t["model_id"].to_numpy()
            roles = np.asarray(t["role"].to_pylist(), dtype=object)
            mask_ids = t["mask_id"].to_numpy()
            for lo in range(0, rows.size, max_rows):
                sl = slice(lo, lo + max_rows)
                out = {"model_ids": ids[sl], "roles": roles[sl], "mask_ids": mask_ids[sl]}
                if with_masks:
                    out["masks"] = np.unpackbits(packed[sl], axis=1, count=self.d).view(bool)
                if with_margins:
                    out["margins"] = Y[sl]
                yield out

    def batch_targets(self, batch_dir: Path) -> np.ndarray:
        meta = pq.read_schema(batch_dir / "margins.parquet").metadata or {}
        return decode_ranges(meta.get(TARGETS_KEY.encode(), b"").decode())

    def _batch_margins(self, bd: Path, rows: np.ndarray, targets) -> np.ndarray:
        """float32 [len(rows), n]: margins of the batch's model rows `rows` on `targets`."""
        have = self.batch_targets(bd)
        col = pq.read_table(bd / "margins.parquet", columns=["margin"])["margin"]
        flat = col.to_numpy() if col.num_chunks != 1 else col.chunk(0).to_numpy()
        full = flat.reshape(-1, have.size) if have.size else np.zeros((0, 0), np.float32)
        all_rows = rows.size == full.shape[0]
        if targets is None:
            return full if all_rows else full[rows]
        pos = np.searchsorted(have, targets)
        pos_c = np.minimum(pos, max(have.size - 1, 0))
        missing = (pos >= have.size) | (have[pos_c] != targets) if have.size else np.ones(targets.size, bool)
        if missing.any():
            raise NotFoundError(f"{bd.name}: models there have no margin for example "
                                f"{int(targets[missing][0])} ({int(missing.sum())} target(s) missing); "
                                f"choose targets the experiment recorded")
        if pos.size == have.size:
            return full if all_rows else full[rows]
        return full[:, pos] if all_rows else full[np.ix_(rows, pos)]

    def mask_matrix(self, experiment, alpha, role=None, dtype=bool) -> np.ndarray:
        """bool (or `dtype`) [m, d]: masks of the matching models, rows by ascending model_id."""
        ids, packed = [], []
        width = (self.d + 7) // 8
        for bd in self._batch_dirs():
            t, rows = self._filtered(bd, experiment, alpha, role, ["model_id", "mask"])
            if rows.size:
                ids.append(t["model_id"].to_numpy())
                packed.append(_fixed_width_bytes(t["mask"], width))
        if not ids:
            self._require_models(experiment, alpha, role)  # raises, listing what the store has
        ids = np.concatenate(ids)
        P = np.concatenate(packed)
        if (np.diff(ids) < 0).any():
            P = P[np.argsort(ids, kind="stable")]
        out = np.unpackbits(P, axis=1, count=self.d)
        return out.view(bool) if dtype is bool else out.astype(dtype, copy=False)

    def margin_matrix(self, experiment, alpha, role=None, targets=None) -> np.ndarray:
        """float32 [m, n]: margins of the matching models (rows by ascending model_id) on
        `targets` (ascending example ids; default: the targets of the first batch)."""
        if targets is not None:
            targets = np.unique(np.asarray(targets)).astype(np.int32)
        ids, parts = [], []
        for bd in self._batch_dirs():
            t, rows = self._filtered(bd, experiment, alpha, role, ["model_id"])
            if not rows.size:
                continue
            if targets is None:
                targets = self.batch_targets(bd)
            ids.append(t["model_id"].to_numpy())
            parts.append(self._batch_margins(bd, rows, targets))
        if not ids:
            self._require_models(experiment, alpha, role)  # raises, listing what the store has
        ids = np.concatenate(ids)
        Y = np.concatenate(parts) if len(parts) > 1 else np.array(parts[0])  # writable, owned
        return Y if not (np.diff(ids) < 0).any() else Y[np.argsort(ids, kind="stable")]

    def experiments(self) -> list[dict]:
        """One dict per (experiment, alpha, role): counts of models and masks."""
        t = self.models(columns=["experiment", "alpha", "role", "mask_id"])
        if t.num_rows == 0:
            return []
        g = t.group_by(["experiment", "alpha", "role"]).aggregate(
            [("mask_id", "count"), ("mask_id", "count_distinct")])
        rows = g.to_pylist()
        return sorted(({"experiment": r["experiment"], "alpha": r["alpha"], "role": r["role"],
                        "models": r["mask_id_count"], "masks": r["mask_id_count_distinct"]}
                       for r in rows), key=lambda r: (r["experiment"], r["alpha"], r["role"]))

    def info(self) -> dict:
        """Summary: format, sizes, experiments by role, target counts, fits, bytes on disk."""
        total = 0
        for dirpath, _, files in os.walk(self.root):
            if L.TMP in Path(dirpath).relative_to(self.root).parts:
                continue
            total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
        targets = set()
        for bd in self._batch_dirs():
            targets.update(self.batch_targets(bd).tolist())
        ex = self.examples()
        splits = pc.value_counts(ex["split"]).to_pylist()
        fits = self.fit_runs()
        return {
            "path": str(self.root),
            "format_version": self.manifest["format_version"],
            "created_at": self.manifest.get("created_at"),
            "train_size": self.d,
            "examples": {s["values"]: s["counts"] for s in splits},
            "experiments": self.experiments(),
            "targets_with_margins": len(targets),
            "fits": fits.num_rows,
            "fit_runs": [{k: r[k] for k in ("fit_id", "experiment", "alpha", "estimator", "n_targets", "n_fit",
                                            "n_val", "n_not_converged", "created_at")}
                         for r in fits.sort_by("fit_id").to_pylist()],
            "bytes_on_disk": total,
        }

    def fit_runs(self) -> pa.Table:
        parts = [pq.read_table(p / "fit_runs.parquet") for p in sorted((self.root / L.FITS).iterdir())
                 if p.is_dir()]
        return pa.concat_tables(parts)

    def connect(self, **kw):
        """A DuckDB connection with the store's views (see `dmstore.db.connect`)."""
        from .db import connect
        return connect(self, **kw)


def _check_unique_across(keys) -> None:
    seen_ids, seen_rows = set(), set()
    for _, _, mids, source, srows, _ in keys:
        if mids is not None:
            for i in mids.tolist():
                if i in seen_ids:
                    raise InputError(f"duplicate model id {i} in the input; model ids must be unique")
                seen_ids.add(i)
        if srows is not None:
            for r in srows.tolist():
                if (source, r) in seen_rows:
                    raise InputError(f"duplicate source row {r} in the input")
                seen_rows.add((source, r))


def _examples_table(examples, train_size, test_size) -> pa.Table:
    """Build and check the examples table (see `Store.create`)."""
    if examples is None:
        if train_size is None or int(train_size) <= 0:
            raise InputError("--train-size D must be a positive integer (or pass --examples FILE)")
        d, n = int(train_size), int(test_size or 0)
        if n < 0:
            raise InputError("--test-size must be >= 0")
        return pa.table({
            "example_id": pa.array(np.arange(d + n, dtype=np.int32)),
            "split": pa.array(["train"] * d + ["test"] * n, pa.string()),
            "label": pa.nulls(d + n, pa.int32()),
            "group_key": pa.nulls(d + n, pa.string()),
        })
    if isinstance(examples, pa.Table):
        t, where = examples, "examples table"
    else:
        where = str(examples)
        p = Path(examples)
        if not p.exists():
            raise InputError(f"{where}: no such file")
        try:
            t = pq.read_table(p) if p.suffix in (".parquet", ".pq") else pacsv.read_csv(p)
        except (pa.ArrowInvalid, OSError) as e:
            raise InputError(f"{where}: cannot read examples ({e}); give a CSV or Parquet file") from None
    for col in ("example_id", "split"):
        if col not in t.column_names:
            raise InputError(f"{where}: missing column {col!r}; need example_id, split, label[, group_key]")
    if "label" not in t.column_names:
        t = t.append_column("label", pa.nulls(t.num_rows, pa.int32()))
    if "group_key" not in t.column_names:
        t = t.append_column("group_key", pa.nulls(t.num_rows, pa.string()))
    try:
        base = pa.table({
            "example_id": t["example_id"].cast(pa.int32()),
            "split": t["split"].cast(pa.string()),
            "label": t["label"].cast(pa.int32()),
            "group_key": t["group_key"].cast(pa.string()),
        })
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise InputError(f"{where}: bad column type ({e})") from None
    extra = [c for c in t.column_names if c not in base.column_names]
    for c in extra:
        base = base.append_column(c, t[c])
    ids = base["example_id"].to_numpy(zero_copy_only=False)
    if base["split"].null_count:
        raise InputError(f"{where}: split is empty in some rows; every example needs a split")
    order = np.argsort(ids)
    if not np.array_equal(ids[order], np.arange(len(ids))):
        raise InputError(f"{where}: example_id must be 0..{len(ids) - 1}, each once (dense, 0-based)")
    base = base.take(pa.array(order))
    split = np.asarray(base["split"].to_pylist())
    d = int((split == "train").sum())
    if d and not (split[:d] == "train").all():
        raise InputError(f"{where}: train examples must hold ids 0..{d - 1} (mask bit i is example i); "
                         f"renumber so the train split comes first")
    return base
