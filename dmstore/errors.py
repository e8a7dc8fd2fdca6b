"""One error hierarchy. The CLI maps every `DmstoreError` to `Error: …` and exit 1."""


class DmstoreError(Exception):
    """Base class of every error dmstore raises on purpose."""


class InputError(DmstoreError, ValueError):
    """Bad input: names the file, row or argument and says how to fix it."""


class ConflictError(DmstoreError):
    """A record with the same identity but different content is already stored."""


class StoreError(DmstoreError):
    """The store directory is missing, damaged, or of an unsupported format version."""


class QueryError(DmstoreError):
    """A query was refused (not read-only, unparsable) or failed in DuckDB."""


class NotFoundError(DmstoreError, KeyError):
    """A named experiment, fit, relation or example does not exist."""

    def __str__(self):  # KeyError quotes its message; keep it plain
        return str(self.args[0]) if self.args else ""
