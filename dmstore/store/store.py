"""The experiment store: a plain directory of Parquet units, a commit log that says which are
live, and a version-stamped manifest.

    store = Store.create("runs", train_size=1347, test_size=450)
    store.append("mlp", 0.5, masks, margins, target_ids, seeds=seeds)   # bool[m, d], float[m, n]
    X = store.mask_matrix("mlp", 0.5, role="fit")                      # bool[m, d]
    Y = store.margin_matrix("mlp", 0.5, role="fit", targets=test_ids)   # float32[m, n]
    con = store.connect()                                               # DuckDB, views from sql/
    old = Store.open("runs", as_of=3)                                   # the store at version 3

`Store` is a facade over one `StoreState` (`store.state`): reading (`reader`) goes through one
snapshot of the log; writing (`writer`) commits through it. Readers never lock.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError, StoreError
from ..storage import log
from ..storage import paths as P
from ..storage.manifest import new_manifest, read_manifest, write_manifest
from ..storage.parquet import write_parquet
from ..storage.units import RELATIONS, empty_unit, new_unit_id
from . import reader, writer
from .examples import examples_table
from .state import StoreState
from .writer import IngestReport

__all__ = ["Store", "IngestReport"]


class Store:
    """An opened store directory. Use `Store.create` or `Store.open`, not the constructor."""

    def __init__(self, state: StoreState):
        self.state = state

    def __repr__(self):
        pin = f", as_of={self.as_of}" if self.as_of is not None else ""
        return f"Store({str(self.root)!r}, mode={self.mode!r}{pin})"

    # ------------------------------------------------------------------ create / open
    @classmethod
    def create(cls, path, train_size: int | None = None, test_size: int = 0, examples=None,
               exist_ok: bool = False) -> "Store":
        """Create a store. `examples`: a CSV/Parquet path or an Arrow table with `example_id, split,
        label[, group_key, …]`; without it, train rows 0..D-1 and test rows D..D+N-1 are generated.
        Train examples must hold ids 0..d-1: mask bit i is example i."""
        root = Path(path)
        if (root / P.MANIFEST).exists():
            if exist_ok:
                return cls.open(root, "a")
            raise StoreError(f"{root}: a store already exists here; open it, or choose a new path")
        if root.exists() and any(root.iterdir()):
            raise StoreError(f"{root}: directory is not empty and holds no store; choose a new path")
        table = examples_table(examples, train_size, test_size)
        d = int(pc.sum(pc.equal(table["split"], "train")).as_py() or 0)
        if train_size is not None and examples is not None and d != train_size:
            raise InputError(f"train_size {train_size} disagrees with {d} train rows in {examples}",
                             params=("train_size",))
        if d == 0:
            raise InputError("a store needs at least one train example (train_size D, or train rows in "
                             "examples)", params=("train_size",))
        # built privately beside ROOT and renamed into place: a store appears whole or not at all,
        # and of concurrent creators (e.g. shard workers) exactly one wins
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = root.parent / f".{root.name}.creating-{new_unit_id()}"
        tmp.mkdir()
        try:
            for sub in (*P.UNIT_PREFIXES, P.TMP, *P.PRIVATE_DIRS):
                (tmp / sub).mkdir()
            write_parquet(table, tmp / P.EXAMPLES, "examples")
            log.init(tmp, [empty_unit(tmp, prefix) for prefix in RELATIONS])
            manifest = new_manifest(d, table.num_rows)
            write_manifest(tmp, manifest)
            try:
                os.rename(tmp, root)   # replaces a missing or empty ROOT only
            except OSError:
                if exist_ok and (root / P.MANIFEST).exists():
                    return cls.open(root, "a")
                raise StoreError(f"{root}: another process created a store or files here meanwhile; "
                                 f"open it, or choose a new path") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return cls(StoreState(root, "a", read_manifest(root)))

    @classmethod
    def open(cls, path, mode: str = "r", as_of: int | None = None) -> "Store":
        """Open an existing store read-only (`"r"`) or for appending (`"a"`); `as_of` pins a
        read-only store to one version of its log."""
        return cls(StoreState.open(path, mode, as_of))

    # ------------------------------------------------------------------ state
    @property
    def root(self) -> Path:
        return self.state.root

    @property
    def mode(self) -> str:
        return self.state.mode

    @property
    def manifest(self) -> dict:
        return self.state.manifest

    @property
    def as_of(self) -> int | None:
        return self.state.as_of

    @property
    def d(self) -> int:
        """Number of train examples (mask width)."""
        return self.state.d

    @property
    def n_examples(self) -> int:
        return self.state.n_examples

    @property
    def version(self) -> int:
        return self.snapshot().version

    def snapshot(self) -> log.Snapshot:
        """The units live in this store: at `as_of` when pinned, else at the latest commit."""
        return self.state.snapshot()

    def pinned(self, version: int | None = None) -> "Store":
        """This store pinned to its current version (or `version`): every read sees the same
        snapshot (writes still commit after the latest version)."""
        return type(self)(self.state.pinned(version))

    def require_writable(self) -> None:
        """Raise StoreError unless the store was opened for writing (mode 'a')."""
        self.state.require_writable()

    def examples(self) -> pa.Table:
        return self.state.examples()

    def example_ids(self, split: str | None = None) -> np.ndarray:
        """int32 [k]: example ids of `split` (all when None), ascending."""
        return self.state.example_ids(split)

    def resolve_targets(self, spec) -> np.ndarray:
        """'test' | 'train' | 'all' | a split name | ids (list / 'a,b,c' / 'a-b') → sorted int32 ids."""
        return self.state.resolve_targets(spec)

    # ------------------------------------------------------------------ reading (see `reader`)
    def models(self, experiment=None, alpha=None, role=None, columns=None) -> pa.Table:
        """Rows of `models` (without masks unless asked) matching the filters, by model_id."""
        return reader.models(self.state, experiment, alpha, role, columns)

    def model_ids(self, experiment, alpha, role=None) -> np.ndarray:
        """int64 [m]: ids of the matching models, ascending (the row order of the matrices)."""
        return reader.model_ids(self.state, experiment, alpha, role)

    def require_models(self, experiment, alpha, role=None) -> None:
        """Raise NotFoundError (listing what the store has) when no model matches."""
        reader.require_models(self.state, experiment, alpha, role)

    def iter_chunks(self, experiment, alpha, role=None, targets=None, with_masks=True, with_margins=True,
                    max_rows: int = 4096, unpack: bool = True):
        """Stream the matching models in chunks (see `reader.iter_chunks`)."""
        return reader.iter_chunks(self.state, experiment, alpha, role, targets, with_masks, with_margins,
                                  max_rows, unpack)

    def missing_targets(self, experiment, alpha, role, targets) -> np.ndarray:
        """int32 [k]: those of `targets` that some matching model has no margin for."""
        return reader.missing_targets(self.state, experiment, alpha, role, targets)

    def batch_targets(self, batch_dir: Path) -> np.ndarray:
        return reader.batch_targets(batch_dir)

    def mask_matrix(self, experiment, alpha, role=None, dtype=bool, packed: bool = False) -> np.ndarray:
        """bool [m, d] (or packed uint8 [m, ⌈d/8⌉]): masks of the matching models by model_id."""
        return reader.mask_matrix(self.state, experiment, alpha, role, dtype, packed)

    def margin_matrix(self, experiment, alpha, role=None, targets=None) -> np.ndarray:
        """float32 [m, n]: margins of the matching models (rows by model_id) on `targets`."""
        return reader.margin_matrix(self.state, experiment, alpha, role, targets)

    def experiments(self) -> list[dict]:
        """One dict per (experiment, alpha, role): counts of models and masks."""
        return reader.experiments(self.state)

    def info(self) -> dict:
        """Summary: format, sizes, experiments by role, target counts, fits, bytes on disk."""
        return reader.info(self.state)

    def fit_runs(self) -> pa.Table:
        return reader.fit_runs(self.state)

    # ------------------------------------------------------------------ writing (see `writer`)
    def append(self, experiment: str, alpha: float, masks, margins, target_ids, seeds=None, mask_ids=None,
               roles=None, **kw) -> IngestReport:
        """Ingest models: masks bool[m, d], margins float[m, n] on examples `target_ids` int[n]
        (see `writer.append` for the keywords: model_ids, source, source_rows, accuracies, mode)."""
        return writer.append(self.state, experiment, alpha, masks, margins, target_ids, seeds, mask_ids,
                             roles, **kw)

    def ingest(self, make_batches, mode: str = "append", progress=None, commit_info: dict | None = None
               ) -> IngestReport:
        """Ingest the batches `make_batches()` yields, in one commit (see `writer.ingest`)."""
        return writer.ingest(self.state, make_batches, mode, progress, commit_info)

    # ------------------------------------------------------------------ verbs of other rooms
    def connect(self, **kw):
        """A sandboxed DuckDB connection over this store's snapshot (see `dmstore.engine.connect`)."""
        from ..engine.connect import connect
        return connect(self, **kw)

    def compact(self, max_cells: int = 32_000_000, layout: str = "target") -> dict:
        """Merge small batches (see `dmstore.store.compact.compact`)."""
        from .compact import compact
        return compact(self, max_cells, layout)

    def copy_by_train(self, fit_id: int, progress: bool = True) -> dict:
        """Write fit `fit_id`'s train-major copy (`weights_by_train`: one training example's
        weights over every target without a scan; see `dmstore.engine.by_train`); a no-op when
        the store has one. Returns {"fit_id", "rows", "seconds", "written"}."""
        from ..engine.by_train import write_by_train
        return write_by_train(self, fit_id, progress)

    def vacuum(self, retain_hours: float = 168.0, dry_run: bool = False, force: bool = False,
               caches: bool = False) -> dict:
        """Delete what no snapshot, reader or writer needs (see `dmstore.storage.vacuum`);
        `caches`: also the retraining and attribution caches (`_retrain/`, `_attribution/`)."""
        from ..storage.vacuum import vacuum
        return vacuum(self.root, retain_hours, dry_run, force, caches)
