"""One error hierarchy. The CLI maps every `DmstoreError` to `Error: …` and exit 1."""


class DmstoreError(Exception):
    """Base class of every error dmstore raises. Messages speak Python: they name arguments by
    their Python names, listed in `params` (the CLI shows them as its flags)."""

    def __init__(self, *args, params: tuple = ()):
        super().__init__(*args)
        self.params = tuple(params)


class InputError(DmstoreError, ValueError):
    """Bad input: names the file, row or argument and says how to fix it."""


class ConflictError(DmstoreError):
    """A record with the same identity but different content is already stored."""


class CommitConflict(ConflictError):
    """A commit made since a writer's snapshot invalidates what it was about to commit (it
    removes a unit this commit also removes, or added a record with one of this commit's
    identities). Writers catch it and re-plan from a newer snapshot; it reaches a caller only
    when they give up."""


class StoreError(DmstoreError):
    """The store directory is missing, damaged, or of an unsupported format version."""


class QueryError(DmstoreError):
    """A query was refused (not read-only, unparsable) or failed in DuckDB."""


class NotFoundError(DmstoreError, KeyError):
    """A named experiment, fit, relation or example does not exist."""

    def __str__(self):  # KeyError quotes its message; keep it plain
        return str(self.args[0]) if self.args else ""
