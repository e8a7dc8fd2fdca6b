"""Units — directories of Parquet files that a commit makes live together — and the primitives
every writer uses around them: staging, publishing, discarding, the writer lock (held only to
reserve model ids) and the cleanup of dead writers' temp entries.

A unit is built complete under `.tmp/`, moved into `batches/` (or `fits/`, `analyses/`) with one
`os.replace`, and becomes live only when a log commit names it. A directory no commit names is
invisible to readers; `vacuum` deletes it once its writer's lease is dead.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import secrets
import shutil
import threading
import time
from pathlib import Path

import pyarrow as pa

from ..errors import StoreError
from . import lease, log
from . import paths as P
from .parquet import TARGETS_KEY, fill_nullable, parquet_writer, write_parquet
from .schema import arrow_schema

# the relations of each unit prefix (the empty unit of a new store holds one zero-row file each)
RELATIONS = {
    P.BATCHES: ("models", "margins"),
    P.FITS: ("fit_runs", "fits", "weights", "eval_predictions"),
    P.ANALYSES: ("counterfactuals", "support", "embedding_pca", "embedding_variance", "clusters"),
}


def new_unit_id(root: Path | None = None) -> str:
    """A sortable, collision-free name for a batch or temp directory: time, pid, and the token
    of this process's writer lease on `root` when it holds one (`lease.held`), else random."""
    held = lease.current(root) if root is not None else None
    if held is not None:
        return held.name()
    return f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"


@contextlib.contextmanager
def writer_lock(root: Path):
    """Exclusive writer lock on the store (blocks until free). Readers never take it."""
    fd = os.open(Path(root) / P.LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


WRITE_BEHIND = 2      # tables a stream may be ahead of its writer thread (each ≤ 4 M rows: ~110 MB)


def write_behind(writer, tables) -> None:
    """Write an iterable of Arrow tables with `writer` (a pq.ParquetWriter) on a second thread,
    so that encoding and compressing one table (pyarrow releases the GIL) overlaps computing the
    next (`tables` is consumed on this thread: a generator's work stays here). At most
    WRITE_BEHIND tables wait. An error on either side stops both and is raised here, the
    producer's first; the file is then incomplete (the caller's unit is discarded)."""
    q: queue.Queue = queue.Queue(maxsize=WRITE_BEHIND)
    failed: list[BaseException] = []

    def run():
        while True:
            t = q.get()
            if t is None:
                return
            if not failed:
                try:
                    writer.write_table(t)
                except BaseException as e:   # noqa: BLE001  kept and raised on the producer's thread
                    failed.append(e)

    th = threading.Thread(target=run, name="parquet-write-behind", daemon=True)
    th.start()
    try:
        for t in tables:
            if failed:
                break
            q.put(t)
    finally:
        q.put(None)            # the writer drains what is queued (skipping it after an error) and stops
        th.join()
    if failed:
        raise failed[0]


class StagedUnit:
    """A directory of Parquet files built privately under `.tmp/`, then published into place.
    Needs this process's writer lease on the store (`lease.held`): its name carries the token."""

    def __init__(self, root: Path, parent: str, name: str | None = None):
        held = lease.current(root)
        if held is None:   # vacuum could not tell this unit's writer is alive
            raise StoreError(f"{root}: internal error: a unit is staged outside a writer lease "
                             f"(wrap the write in dmstore.storage.lease.held(root))")
        self.root, self.parent = Path(root), parent
        self.name = held.name(f"{name}-" if name else "")
        self.tmp = self.root / P.TMP / self.name
        self.tmp.mkdir(parents=True)
        self.published = False

    def write(self, kind: str, table, metadata: dict | None = None) -> None:
        """Write `kind`.parquet from an Arrow table, or stream it from an iterable of tables
        (each cast to the schema; memory is bounded by one of them)."""
        if isinstance(table, pa.Table):
            write_parquet(table, self.tmp / f"{kind}.parquet", kind, metadata)
            return
        schema = arrow_schema(kind)
        with parquet_writer(self.tmp / f"{kind}.parquet", kind, metadata) as w:
            write_behind(w, (fill_nullable(part, schema).select(schema.names).cast(schema) for part in table))

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


@contextlib.contextmanager
def private_file(root: Path, prefix: str, suffix: str):
    """The path of a private temporary file under `.tmp/` for the duration (nothing is created
    here): named with this process's writer lease token (so vacuum and stale-temp cleanup judge
    it by that lease) and deleted on exit, whatever happens. Needs the lease (`lease.held`)."""
    held = lease.current(root)
    if held is None:
        raise StoreError(f"{root}: internal error: a temp file outside a writer lease "
                         f"(wrap the write in dmstore.storage.lease.held(root))")
    path = Path(root) / P.TMP / held.name(f"{prefix}-")
    path = path.with_name(path.name + suffix)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def remove_unit(root: Path, unit: Path) -> None:
    """Delete a unit directory that no commit names: renamed into `.tmp/` first, then deleted."""
    trash = Path(root) / P.TMP / f"trash-{new_unit_id()}"
    try:
        os.replace(unit, trash)
    except FileNotFoundError:   # already gone (deleted by vacuum or by hand)
        return
    shutil.rmtree(trash, ignore_errors=True)


def clean_stale_temps(root: Path) -> int:
    """Delete `.tmp/` entries of writers that are gone: trash, and entries whose writer's lease
    is dead (`lease.entry_alive`; judged by heartbeat age, never by a PID of another machine)."""
    n = 0
    tmp = Path(root) / P.TMP
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


def empty_unit(root: Path, prefix: str) -> dict:
    """Write `prefix/0-empty` with a zero-row file per relation of `prefix` (pins column types;
    keeps every relation's file list non-empty); returns its log entry."""
    unit = Path(root) / prefix / P.EMPTY
    unit.mkdir(exist_ok=True)
    for kind in RELATIONS[prefix]:
        write_parquet(arrow_schema(kind).empty_table(), unit / f"{kind}.parquet", kind,
                      {TARGETS_KEY: ""} if kind == "margins" else None)
    return {"path": f"{prefix}/{P.EMPTY}", "relations": list(RELATIONS[prefix])}
