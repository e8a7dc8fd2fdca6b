"""The explorer's view of a store: one sandboxed DuckDB connection over one snapshot (the same
sandbox as `dmstore query`), shared by every request under a lock, reopened on the newest
version when the user asks (`reload`). Queries of `sql/internal/serve_*.sql` return plain rows;
user SQL (`/sql`) runs through `read_relation` with a row cap and a time limit."""
from __future__ import annotations

import math
import os
import tempfile
import threading
from pathlib import Path

import duckdb

from ..engine.connect import connect
from ..engine.formats import write_relation
from ..engine.query import query_error, read_relation, run
from ..errors import QueryError
from ..storage import log
from ..store.fits import copied_fits
from .images import Images

QUERY_TIMEOUT_S = 10.0      # /sql: a query still running after this is interrupted
PAGE_ROWS = 100             # /sql: rows per page
DOWNLOAD_ROWS = 1_000_000   # /sql: rows in a CSV/Parquet download at most
CACHE_TABLES = 64           # per-fit tables kept per snapshot (oldest dropped first)


def _plain(v):
    """A JSON-safe Python value (NaN/inf become None, bytes become hex, Decimals floats)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if v is None or isinstance(v, (int, str, bool)):
        return v
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


class Snapshot:
    """root: the store folder; images: an optional folder of `{example_id}.png`; timeout_s: the
    time limit of a /sql query (seconds)."""

    def __init__(self, root, images=None, timeout_s: float = QUERY_TIMEOUT_S, threads: int | None = None):
        self.root = Path(root)
        self.images_dir = images
        self.timeout_s = float(timeout_s)
        self.threads = threads
        self.lock = threading.RLock()
        self.con = None
        self._cache: dict = {}
        self.open()

    def open(self) -> None:
        """(Re)connect to the newest version of the store."""
        con = connect(self.root, threads=self.threads)
        version = run(con, "serve_version").fetchall()[0][0]
        images = Images(con, self.images_dir)
        with self.lock:
            old, self.con, self.version, self.images = self.con, con, int(version), images
            self._cache = {}
        if old is not None:
            old.close()
        threading.Thread(target=self._warm, args=(con,), daemon=True, name="dmstore-serve-warm").start()

    def _warm(self, con) -> None:
        """Compute the home page's tables ahead of the first request (on a large store the method
        table's metrics take a while); a request meanwhile waits on the lock for the same work."""
        try:
            jobs = [("serve_fits", {}), ("serve_experiments", {})]
            with self.lock:
                if self.con is not con:
                    return
                fits = [r["fit_id"] for r in self.table("serve_fits")]
            jobs += [("serve_metrics", {"f": f}) for f in fits]   # the target lists' held-out LDS
            for name, params in jobs:
                with self.lock:
                    if self.con is not con:   # reloaded or closed meanwhile
                        return
                    self.table(name, **params)
        except Exception:   # noqa: BLE001 — warming is an optimisation; the request will report the error
            pass

    def latest_version(self) -> int:
        return int(log.latest_version(self.root))

    def rows(self, name: str, **params) -> list[dict]:
        """Rows of internal query `name` as dicts."""
        with self.lock:
            rel = run(self.con, name, **params)
            cols = rel.columns
            data = rel.fetchall()
        return [{c: _plain(v) for c, v in zip(cols, r)} for r in data]

    def arrays(self, name: str, **params) -> dict:
        """Columns of internal query `name` as numpy arrays (for large per-target reads)."""
        with self.lock:
            return run(self.con, name, **params).fetchnumpy()

    def cached(self, key, build):
        """build() kept under `key` for the life of the snapshot (which never changes); the
        oldest of CACHE_TABLES entries is dropped first."""
        with self.lock:
            if key not in self._cache:
                if len(self._cache) >= CACHE_TABLES:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[key] = build()
            return self._cache[key]

    def table(self, name: str, **params) -> list[dict]:
        """`rows(name, **params)` kept for the snapshot's life: the per-fit tables that pages
        slice (metrics, support, leakage, agreement, each example's top targets), computed once."""
        return self.cached((name, tuple(sorted(params.items()))), lambda: self.rows(name, **params))

    def by_train_fits(self) -> set[int]:
        """The fits of this snapshot that have a train-major copy (`weights_by_train`), from its
        commit log (`store.fits.copied_fits`)."""
        return self.cached("by_train_fits", lambda: set(copied_fits(log.snapshot(self.root, self.version))))

    def png(self, example_id: int) -> bytes | None:
        return self.images.png(example_id, lock=self.lock)

    def _timed(self, fn):
        """fn() with the connection interrupted after `timeout_s` (QueryError then)."""
        fired = threading.Event()

        def stop():
            fired.set()
            self.con.interrupt()
        timer = threading.Timer(self.timeout_s, stop)
        timer.start()
        try:
            return fn()
        except duckdb.Error as e:
            if fired.is_set():
                raise QueryError(f"the query ran longer than the explorer's limit of {self.timeout_s:g} s and was "
                                 f"cancelled; narrow it, or run it with `dmstore query`") from None
            raise query_error(e, self.root) from None
        finally:
            timer.cancel()

    def sql(self, text: str, page: int = 0, page_rows: int = PAGE_ROWS) -> dict:
        """One page of a read-only query's rows: {columns, rows, page, more}. Refuses what
        `dmstore query` refuses (QueryError)."""
        with self.lock:
            rel = read_relation(self.root, text, con=self.con)

            def fetch():
                r = rel.limit(page_rows + 1, page * page_rows)
                return r.columns, r.fetchall()
            cols, data = self._timed(fetch)
        more = len(data) > page_rows
        return {"columns": cols, "rows": [[_plain(v) for v in r] for r in data[:page_rows]], "page": page,
                "page_rows": page_rows, "more": more}

    def download(self, text: str, fmt: str) -> bytes:
        """The query's rows (at most DOWNLOAD_ROWS) as CSV or Parquet bytes."""
        fd, tmp = tempfile.mkstemp(suffix="." + fmt)
        os.close(fd)
        try:
            with self.lock:
                rel = read_relation(self.root, text, con=self.con)
                self._timed(lambda: write_relation(rel.limit(DOWNLOAD_ROWS), fmt, tmp))
            return Path(tmp).read_bytes()
        finally:
            Path(tmp).unlink(missing_ok=True)

    def close(self) -> None:
        with self.lock:
            if self.con is not None:
                self.con.close()
                self.con = None
