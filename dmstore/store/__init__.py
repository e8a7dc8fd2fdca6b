"""The store: the `Store` facade over one `StoreState`, with its reader, writer (planned
against a snapshot, committed through the log), batches, validation, compaction and the commits
of derived units (fits, analyses)."""
from .state import StoreState
from .store import IngestReport, Store

__all__ = ["Store", "StoreState", "IngestReport"]
