"""dmstore: a database-backed experiment store with SQL analytics for datamodels.

    import dmstore
    store = dmstore.Store.open("runs")
    con = dmstore.connect("runs")          # DuckDB over the store's snapshot, every view and macro

The package, by room: `storage` (files, log, units, leases, vacuum), `store` (the Store facade,
its reader and writer), `ingest` (one module per source), `engine` (the SQL catalog, sandboxed
connections, queries, exports), `dialects` (Spark and other SQL), `fit` (the regression),
`analysis` (counterfactuals, support, embeddings, report), `train` and `recipes`, `cli`.
"""
__version__ = "0.1.0"

from .errors import (CommitConflict, ConflictError, DmstoreError, InputError, NotFoundError,  # noqa: E402
                     QueryError, StoreError)
from .api import Store  # noqa: E402
from .store import IngestReport  # noqa: E402


def connect(store, **kw):
    """DuckDB connection over a store (path or `Store`) with every view and macro of `sql/`
    registered, sandboxed (see `dmstore.engine.connect`)."""
    from .engine.connect import connect as _connect
    return _connect(store, **kw)


__all__ = ["Store", "IngestReport", "connect", "DmstoreError", "InputError", "ConflictError", "CommitConflict",
           "StoreError", "QueryError", "NotFoundError", "__version__"]
