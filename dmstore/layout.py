"""Where things live inside a store directory, and the primitives every writer uses: a
writer lock (held only to reserve model ids) and staged units.

    STORE/dmstore.json                       manifest (format version, d, created_at, …)
    STORE/_log/<version>.json                the commit log: what is live (see `log`)
    STORE/examples.parquet                   written once by `init`
    STORE/batches/<batch>/models.parquet     one ingested batch of models …
    STORE/batches/<batch>/margins.parquet    … and its margins (live in the same commit)
    STORE/fits/<fit>/{fit_runs,fits,weights,eval_predictions}.parquet
    STORE/analyses/<unit>/{counterfactuals,support,…}.parquet
    STORE/.tmp/<unit>/                       private: files being written
    STORE/.lock                              private: writer lock (fcntl), for id reservation
    STORE/.next_model_id                     private: the next model id no writer has reserved

A unit is built complete under `.tmp/`, moved into `batches/` (or `fits/`, `analyses/`) with one
`os.replace`, and becomes live only when a log commit names it. A directory no commit names is
invisible to readers; `vacuum` deletes it once it is older than the retention period.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import lease, log
from .errors import StoreError
from .schema import arrow_schema

MANIFEST = "dmstore.json"
EXAMPLES = "examples.parquet"
BATCHES = "batches"
FITS = "fits"
ANALYSES = "analyses"
TMP = ".tmp"
LOCK = ".lock"
NEXT_ID = ".next_model_id"   # private: model ids reserved by writers (never reused)
EMPTY = "0-empty"  # zero-row files that pin column types and keep file lists non-empty
ROW_GROUP_ROWS = 1 << 20  # rows per Parquet row group of every written file (target-major margins: below)
MAX_CELLS = 4_000_000  # margins per written batch (~16 MB as float32): bounds memory whatever the input

# Per-column Parquet encodings. Margins are float32 that often came from float16: splitting the
# bytes into streams lets zstd drop the all-zero low mantissa bytes.
_WRITE_OPTIONS = {
    "margins": dict(use_dictionary=["example_id", "margin"], use_byte_stream_split=["margin"],
                    compression_level=1),
    "weights": dict(use_dictionary=["fit_id", "target_id", "lam"], use_byte_stream_split=["weight"]),
}


def new_unit_id(root: Path | None = None) -> str:
    """A sortable, collision-free name for a batch or temp directory: time, pid, and the token
    of this process's writer lease on `root` when it holds one (`lease.held`), else random."""
    held = lease.current(root) if root is not None else None
    if held is not None:
        return held.name()
    return f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"


def write_parquet(table: pa.Table, path: Path, kind: str, metadata: dict | None = None) -> None:
    """Write `table` (cast to schema `kind`) to `path` with the store's compression settings;
    `metadata` (str → str) goes into the file's key-value metadata."""
    schema = arrow_schema(kind)
    extra = [table.schema.field(c) for c in table.column_names if c not in schema.names]
    if extra:  # user columns (examples only) follow the contract's columns
        schema = pa.schema(list(schema) + extra)
        table = table.select(schema.names)
    table = table.cast(schema) if not table.schema.equals(schema) else table
    if metadata:
        table = table.replace_schema_metadata({k: str(v) for k, v in metadata.items()})
    opts = {"compression_level": 3, **_WRITE_OPTIONS.get(kind, {})}
    pq.write_table(table, path, compression="zstd", row_group_size=ROW_GROUP_ROWS, write_statistics=True, **opts)


# rows per row group of a target-major margins file (whole targets). A point query pays per row
# group (footer statistics) more than per row: on 1.2 B margins in 38 files, 1 M-row groups
# answer one target in 0.095 s vs 0.24 s with 128 k-row groups, and the file is 7 % smaller.
TARGET_GROUP_ROWS = 1 << 20


def write_margins_target_major(path: Path, model_ids: np.ndarray, target_ids: np.ndarray, Y: np.ndarray,
                               metadata: dict) -> None:
    """Margins Y float32 [m, n] of models `model_ids` on `target_ids`, target-major: sorted by
    (example_id, model row), row groups of whole targets, so the min/max statistics of
    example_id let a reader of one target skip every other group; model_id is delta-encoded
    (constant steps cost no bits), example_id runs cost a dictionary index per run."""
    m, n = Y.shape
    table = pa.table({"model_id": np.tile(np.asarray(model_ids, np.int64), n),
                      "example_id": np.repeat(np.asarray(target_ids, np.int32), m),
                      "margin": np.ascontiguousarray(Y.T, dtype=np.float32).ravel()})
    table = table.cast(arrow_schema("margins")).replace_schema_metadata({k: str(v) for k, v in metadata.items()})
    opts = {"compression_level": 3, **_WRITE_OPTIONS["margins"]}
    pq.write_table(table, path, compression="zstd", row_group_size=max(1, TARGET_GROUP_ROWS // max(m, 1)) * max(m, 1),
                   write_statistics=True, column_encoding={"model_id": "DELTA_BINARY_PACKED"}, **opts)


def parquet_writer(path: Path, kind: str, metadata: dict | None = None) -> pq.ParquetWriter:
    """A streaming writer with the same schema and settings as `write_parquet` (for compaction)."""
    schema = arrow_schema(kind)
    if metadata:
        schema = schema.with_metadata({k: str(v) for k, v in metadata.items()})
    opts = {"compression_level": 3, **_WRITE_OPTIONS.get(kind, {})}
    return pq.ParquetWriter(path, schema, compression="zstd", write_statistics=True, **opts)


@contextlib.contextmanager
def writer_lock(root: Path):
    """Exclusive writer lock on the store (blocks until free). Readers never take it."""
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class StagedUnit:
    """A directory of Parquet files built privately under `.tmp/`, then published into place."""

    def __init__(self, root: Path, parent: str, name: str | None = None):
        held = lease.current(root)
        if held is None:   # vacuum could not tell this unit's writer is alive
            raise StoreError(f"{root}: internal error: a unit is staged outside a writer lease "
                             f"(wrap the write in dmstore.lease.held(root))")
        self.root, self.parent = root, parent
        self.name = held.name(f"{name}-" if name else "")
        self.tmp = root / TMP / f"{self.name}"
        self.tmp.mkdir(parents=True)
        self.published = False

    def write(self, kind: str, table: pa.Table, metadata: dict | None = None) -> None:
        write_parquet(table, self.tmp / f"{kind}.parquet", kind, metadata)

    @property
    def path(self) -> str:
        """The unit's path relative to the store, as the log names it."""
        return f"{self.parent}/{self.name}"

    def publish(self) -> str:
        """Move the staged directory into `parent/` (durable, not yet live: a log commit makes
        it live); returns its relative path."""
        for f in self.tmp.iterdir():  # make the data durable before a commit can name it
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(self.tmp, self.root / self.parent / self.name)
        self.published = True
        return self.path

    def discard(self) -> None:
        """Delete the unit unless a commit made it live (safe to call at any point)."""
        if not self.published:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        if self.path not in log.snapshot(self.root).units:
            remove_unit(self.root, self.root / self.path)


def remove_unit(root: Path, unit: Path) -> None:
    """Delete a unit directory that no commit names: renamed into `.tmp/` first, then deleted."""
    trash = root / TMP / f"trash-{new_unit_id()}"
    try:
        os.replace(unit, trash)
    except FileNotFoundError:   # already gone (deleted by vacuum or by hand)
        return
    shutil.rmtree(trash, ignore_errors=True)


def clean_stale_temps(root: Path) -> int:
    """Delete `.tmp/` entries of writers that are gone: trash, and entries whose writer's lease
    is dead (`lease.entry_alive`; judged by heartbeat age, never by a PID of another machine)."""
    n = 0
    tmp = root / TMP
    if not tmp.exists():
        return 0
    for entry in tmp.iterdir():
        try:
            mtime = entry.stat().st_mtime
        except FileNotFoundError:
            continue
        if entry.name.startswith("trash-") or not lease.entry_alive(root, entry.name, mtime):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:   # e.g. a next-id file whose writer died before renaming it
                entry.unlink(missing_ok=True)
            n += 1
    return n
