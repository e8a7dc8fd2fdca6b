"""The experiment store: a plain directory of Parquet units, a commit log that says which are
live, and a version-stamped manifest.

    store = Store.create("runs", train_size=1347, test_size=450)
    store.append("mlp", 0.5, masks, margins, target_ids, seeds=seeds)   # bool[m, d], float[m, n]
    X = store.mask_matrix("mlp", 0.5, role="fit")                      # bool[m, d]
    Y = store.margin_matrix("mlp", 0.5, role="fit", targets=test_ids)   # float32[m, n]
    con = store.connect()                                               # DuckDB, views from sql/
    old = Store.open("runs", as_of=3)                                   # the store at version 3

Reading (`reader.Reader`) goes through one snapshot of the log (`log.Snapshot`); writing
(`writer.Writer`) commits through it. Readers never lock.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import layout as L
from . import log
from .batch import decode_ranges
from .errors import InputError, StoreError
from .manifest import examples_table, new_manifest, read_manifest, write_manifest
from .reader import TARGETS_KEY, Reader
from .schema import arrow_schema
from .writer import IngestReport, Writer

__all__ = ["Store", "IngestReport", "TARGETS_KEY"]

EMPTY_UNITS = {
    L.BATCHES: ("models", "margins"),
    L.FITS: ("fit_runs", "fits", "weights", "eval_predictions"),
    L.ANALYSES: ("counterfactuals", "support", "embedding_pca", "embedding_variance", "clusters"),
}


class Store(Reader, Writer):
    """An opened store directory. Use `Store.create` or `Store.open`, not the constructor."""

    def __init__(self, root: Path, mode: str, manifest: dict, as_of: int | None = None):
        self.root = Path(root)
        self.mode = mode
        self.manifest = manifest
        self.as_of = as_of
        self._examples: pa.Table | None = None
        self._snap: log.Snapshot | None = None
        self._index_cache: dict = {}   # unit path -> identity columns (units are immutable)

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
        table = examples_table(examples, train_size, test_size)
        d = int(pc.sum(pc.equal(table["split"], "train")).as_py() or 0)
        if train_size is not None and examples is not None and d != train_size:
            raise InputError(f"--train-size {train_size} disagrees with {d} train rows in {examples}")
        if d == 0:
            raise InputError("a store needs at least one train example (--train-size D)")
        # built privately beside ROOT and renamed into place: a store appears whole or not at all,
        # and of concurrent creators (e.g. shard workers) exactly one wins
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = root.parent / f".{root.name}.creating-{L.new_unit_id()}"
        tmp.mkdir()
        try:
            for sub in (L.BATCHES, L.FITS, L.ANALYSES, L.TMP):
                (tmp / sub).mkdir()
            L.write_parquet(table, tmp / L.EXAMPLES, "examples")
            log.init(tmp, [empty_unit(tmp, prefix, kinds) for prefix, kinds in EMPTY_UNITS.items()])
            manifest = new_manifest(d, table.num_rows)
            write_manifest(tmp, manifest)
            try:
                os.rename(tmp, root)   # replaces a missing or empty ROOT only
            except OSError:
                if exist_ok and (root / L.MANIFEST).exists():
                    return cls.open(root, "a")
                raise StoreError(f"{root}: another process created a store or files here meanwhile; "
                                 f"open it, or choose a new path") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return cls(root, "a", manifest)

    @classmethod
    def open(cls, path, mode: str = "r", as_of: int | None = None) -> "Store":
        """Open an existing store read-only (`"r"`) or for appending (`"a"`); `as_of` pins a
        read-only store to one version of its log."""
        if mode not in ("r", "a"):
            raise InputError(f"mode must be 'r' or 'a', got {mode!r}")
        if as_of is not None and mode != "r":
            raise InputError("as_of opens a past version read-only; use mode 'r'")
        root = Path(path)
        store = cls(root, mode, read_manifest(root), as_of)
        store.snapshot()   # the log is readable (and as_of exists)
        if mode == "a":
            with L.writer_lock(root):
                L.clean_stale_temps(root)
        return store

    def snapshot(self) -> log.Snapshot:
        """The units live in this store: at `as_of` when pinned, else at the latest commit."""
        if self.as_of is not None:
            if self._snap is None:
                snap = log.snapshot(self.root, self.as_of)
                gone = snap.missing_files()
                if gone:   # never read a past version as if it had fewer rows
                    raise StoreError(f"{self.root}: version {self.as_of} names {len(gone)} file(s) that were "
                                     f"deleted (by `dmstore vacuum`, or by hand), e.g. {gone[0]}; read a newer version "
                                     f"(see `dmstore log`)")
                self._snap = snap
            return self._snap
        latest = log.latest_version(self.root)
        if self._snap is None or self._snap.version != latest:
            self._snap = log.snapshot(self.root, latest)
        return self._snap

    def pinned(self, version: int | None = None) -> "Store":
        """This store pinned to its current version (or `version`): every read sees the same
        snapshot (writes still commit after the latest version)."""
        s = Store(self.root, self.mode, self.manifest, self.snapshot().version if version is None else version)
        s._examples = self._examples
        return s

    @property
    def version(self) -> int:
        return self.snapshot().version

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

    def connect(self, **kw):
        """A sandboxed DuckDB connection over this store's snapshot (see `dmstore.db.connect`)."""
        from .db import connect
        return connect(self, **kw)

    def _require_writable(self):
        if self.mode != "a":
            raise StoreError(f"{self.root}: opened read-only; use Store.open(path, mode='a') to write")


def empty_unit(root: Path, prefix: str, kinds) -> dict:
    """Write `prefix/0-empty` with a zero-row file per kind (pins column types; keeps every
    relation's file list non-empty); returns its log entry."""
    unit = root / prefix / L.EMPTY
    unit.mkdir(exist_ok=True)
    for kind in kinds:
        L.write_parquet(arrow_schema(kind).empty_table(), unit / f"{kind}.parquet", kind,
                        {TARGETS_KEY: ""} if kind == "margins" else None)
    return {"path": f"{prefix}/{L.EMPTY}", "relations": list(kinds)}
