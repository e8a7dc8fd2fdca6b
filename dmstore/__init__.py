"""dmstore: a database-backed experiment store with SQL analytics for datamodels."""
__version__ = "0.1.0"

from .errors import ConflictError, DmstoreError, InputError, NotFoundError, QueryError, StoreError  # noqa: E402
from .store import IngestReport, Store  # noqa: E402


def connect(store, **kw):
    """DuckDB connection over a store (path or `Store`) with every view of `sql/` registered."""
    from .db import connect as _connect
    return _connect(store, **kw)


__all__ = ["Store", "IngestReport", "connect", "DmstoreError", "InputError", "ConflictError",
           "StoreError", "QueryError", "NotFoundError", "__version__"]
