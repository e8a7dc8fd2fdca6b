"""Committing a unit of derived tables (a fit, an analysis) in one log commit, and fit ids."""
from __future__ import annotations

from pathlib import Path

from ..errors import CommitConflict, ConflictError
from ..storage import lease, log
from ..storage import paths as P
from ..storage.files import create_exclusive, utc_now
from ..storage.units import StagedUnit

MAX_RETRIES = 50


def reserve_fit_id(root, owner: str) -> int:
    """A fit id no other fit has or will get: the next after every committed and reserved id
    (reserved by creating `_fit_ids/<id>` exclusively, on any machine sharing the store)."""
    root = Path(root)
    d = root / P.FIT_IDS
    for _ in range(1000):
        committed = max((e.get("fit_id", 0) for e in log.snapshot(root).units.values()), default=0)
        reserved = max((int(p.name) for p in d.iterdir() if p.name.isdigit()), default=0) if d.exists() else 0
        fid = max(committed, reserved) + 1
        if create_exclusive(d / f"{fid:08d}", {"owner": owner, "at": utc_now()}):
            return fid
    raise ConflictError(f"{root}: could not reserve a fit id (1000 attempts)")


def commit_unit(store, prefix: str, tables: dict, operation: str, entry: dict | None = None,
                info: dict | None = None, check=None, name: str | None = None,
                base: log.Snapshot | None = None, remove: list[str] = ()) -> int:
    """Write `tables` as one unit under `prefix` (`fits`, `analyses`) and make it live in one
    commit after snapshot `base` (default: the latest), retiring the units `remove`; returns
    the version. Values of `tables` (kind → …) are Arrow tables, iterables of tables (streamed
    to the file) or callables returning either, written in order (a callable may use what an
    earlier stream computed). `check` as in `log.commit` (a conflict removes the unit and
    re-raises). `name` prefixes the unit's directory name."""
    with lease.held(store.root, operation):
        base = log.snapshot(store.root) if base is None else base
        unit = StagedUnit(store.root, prefix, name)
        try:
            for kind, t in tables.items():
                unit.write(kind, t() if callable(t) else t)
            path = unit.publish()
        except BaseException:
            unit.discard()
            raise
        e = {"path": path, "relations": list(tables), **(entry or {})}
        try:
            return log.commit(base, operation, [e], list(remove), info=info, check=check)
        except BaseException:
            unit.discard()
            raise


def commit_fit(store, tables, info: dict, remove: list[str] = ()) -> int:
    """Commit one fit unit: `tables(fit_id)` gives its tables for a fit id, reserved first
    (`reserve_fit_id`: unique across concurrent fits and sharded runs), retiring the units
    `remove` (a fit it replaces) in the same commit. Returns the fit id."""
    for _ in range(MAX_RETRIES):
        fit_id = reserve_fit_id(store.root, "fit")

        def check(commit, fit_id=fit_id):   # a writer of an older dmstore that reserves no ids
            if any(e.get("fit_id") == fit_id for e in commit.get("add", [])):
                raise CommitConflict(f"fit id {fit_id} was committed meanwhile")
        try:
            commit_unit(store, P.FITS, tables(fit_id), "fit", {"fit_id": fit_id},
                        info={"fit_id": fit_id, **info}, check=check, name=f"{fit_id:08d}", remove=remove)
            return fit_id
        except CommitConflict:
            continue
        except BaseException:   # nothing was committed: the id goes back (no fit ever had it)
            (Path(store.root) / P.FIT_IDS / f"{fit_id:08d}").unlink(missing_ok=True)
            raise
    raise ConflictError(f"{store.root}: gave up after {MAX_RETRIES} attempts to take a fit id")


def commit_analysis(store, tables: dict) -> int:
    """Commit one analysis unit (kind → Arrow table: counterfactuals, support, embeddings…);
    returns the log version."""
    return commit_unit(store, P.ANALYSES, tables, "analysis", info={"relations": list(tables)})
