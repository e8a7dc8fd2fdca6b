"""The state of one opened store: its root, mode, manifest, the version it is pinned to, and
what it caches (snapshot, examples, identity columns of immutable units). Reader and writer
functions take it; the `Store` facade holds one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import InputError, StoreError
from ..storage import log
from ..storage import paths as P
from ..storage.manifest import read_manifest
from ..storage.parquet import decode_ranges
from ..storage.units import clean_stale_temps, writer_lock

MODES = ("r", "a")


@dataclass
class StoreState:
    """root: the store directory; mode 'r' (read) or 'a' (append); as_of: the log version it is
    pinned to (None: every read sees the latest commit)."""
    root: Path
    mode: str
    manifest: dict
    as_of: int | None = None
    examples_table: pa.Table | None = None
    index_cache: dict = field(default_factory=dict)   # unit path -> identity columns (units are immutable)
    _snap: log.Snapshot | None = None

    @classmethod
    def open(cls, path, mode: str = "r", as_of: int | None = None) -> "StoreState":
        """Open the store at `path` read-only ('r') or for appending ('a'); `as_of` pins a
        read-only state to one version of the log."""
        if mode not in MODES:
            raise InputError(f"mode must be 'r' or 'a', got {mode!r}", params=("mode",))
        if as_of is not None and mode != "r":
            raise InputError("as_of opens a past version read-only; use mode 'r'", params=("as_of",))
        root = Path(path)
        state = cls(root, mode, read_manifest(root), as_of)
        state.snapshot()   # the log is readable (and as_of exists)
        state.check_examples()   # and the examples agree with the manifest
        if mode == "a":
            with writer_lock(root):
                clean_stale_temps(root)
        return state

    @property
    def d(self) -> int:
        """Number of train examples (mask width)."""
        return int(self.manifest["train_size"])

    @property
    def n_examples(self) -> int:
        return int(self.manifest["n_examples"])

    def snapshot(self) -> log.Snapshot:
        """The units live: at `as_of` when pinned, else at the latest commit."""
        if self.as_of is not None:
            if self._snap is None:
                snap = log.snapshot(self.root, self.as_of)
                gone = snap.missing_files()
                if gone:   # never read a past version as if it had fewer rows
                    raise StoreError(f"{self.root}: version {self.as_of} names {len(gone)} file(s) that were "
                                     f"deleted (by `dmstore vacuum`, or by hand), e.g. {gone[0]}; read a newer "
                                     f"version (see `dmstore log`)")
                self._snap = snap
            return self._snap
        latest = log.latest_version(self.root)
        if self._snap is None or self._snap.version != latest:
            self._snap = log.snapshot(self.root, latest)
        return self._snap

    def pinned(self, version: int | None = None) -> "StoreState":
        """This state pinned to its current version (or `version`): every read sees the same
        snapshot (writes still commit after the latest version)."""
        v = self.snapshot().version if version is None else version
        return StoreState(self.root, self.mode, self.manifest, v, self.examples_table, self.index_cache)

    def require_writable(self) -> None:
        if self.mode != "a":
            raise StoreError(f"{self.root}: opened read-only (Store.open's default); to write, open it with "
                             f"Store.open({str(self.root)!r}, mode='a')"
                             + (f" (a store pinned to version {self.as_of} cannot be written)" if self.as_of is not None
                                else ""))

    def _read_examples(self, columns=None) -> pa.Table:
        path = self.root / P.EXAMPLES
        try:
            return pq.read_table(path, columns=columns)
        except FileNotFoundError:
            raise StoreError(f"{path}: missing; the store is damaged (restore it from a copy)") from None
        except (OSError, pa.ArrowInvalid, KeyError) as e:
            raise StoreError(f"{path}: unreadable ({e}); restore it from a copy of the store") from None

    def check_examples(self, t: pa.Table | None = None) -> None:
        """The examples table has the manifest's numbers of examples and train examples (only
        its `split` column is read)."""
        t = self._read_examples(["split"]) if t is None else t
        d = int(pc.sum(pc.equal(t["split"], "train")).as_py() or 0) if "split" in t.column_names else -1
        if t.num_rows != self.n_examples or d != self.d:
            raise StoreError(f"{self.root}: the manifest says {self.d} train of {self.n_examples} examples "
                             f"but {P.EXAMPLES} holds {max(d, 0)} of {t.num_rows}; the store is damaged "
                             f"(restore {P.MANIFEST} or {P.EXAMPLES} from a copy)")

    def examples(self) -> pa.Table:
        """The examples table (read once)."""
        if self.examples_table is None:
            t = self._read_examples()
            self.check_examples(t)
            self.examples_table = t
        return self.examples_table

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
                                 f"'all', or ids like '0,5,10-20'", params=("targets",)) from None
        else:
            ids = np.asarray(spec, dtype=np.int64)
        bad = ids[(ids < 0) | (ids >= self.n_examples)]
        if bad.size:
            raise InputError(f"target id {int(bad[0])} is not an example of this store "
                             f"(ids 0..{self.n_examples - 1})", params=("targets",))
        return np.unique(ids).astype(np.int32)


def open_state(store, mode: str = "r", as_of: int | None = None) -> StoreState:
    """A StoreState from a path, a StoreState or a `Store` (anything with `.state`): the same
    object when it is already open at that version, else the store opened afresh."""
    st = getattr(store, "state", store)
    if isinstance(st, StoreState):
        if (as_of is None or as_of == st.as_of) and (mode == "r" or st.mode == "a"):
            return st
        return StoreState.open(st.root, mode, as_of)
    return StoreState.open(store, mode, as_of)
