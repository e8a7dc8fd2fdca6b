"""Committing a unit of derived tables (a fit, an analysis) in one log commit, and fit ids
(`fits` owns what a fit commit claims and checks)."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from ..errors import ConflictError
from ..storage import lease, log
from ..storage import paths as P
from ..storage.files import create_exclusive, utc_now
from ..storage.units import StagedUnit

MAX_RETRIES = 50


def reserve_fit_id(root, owner: str) -> int:
    """A fit id no other fit has or will get: the next after every committed and reserved id
    (reserved by creating `_fit_ids/<id>` exclusively, on any machine sharing the store). The
    reservation names this process's writer lease when it holds one; a reservation whose writer
    died before committing is taken back, so a killed writer's id is the next writer's."""
    root = Path(root)
    d = root / P.FIT_IDS
    held = lease.current(root)
    for _ in range(1000):
        committed = max((e.get("fit_id", 0) for e in log.snapshot(root).units.values()), default=0)
        reserved = sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.exists() else []
        for fid in reserved:
            if fid > committed and _abandoned(root, d / f"{fid:08d}"):
                (d / f"{fid:08d}").unlink(missing_ok=True)
        reserved = [f for f in reserved if (d / f"{f:08d}").exists()]
        fid = max([committed, *reserved]) + 1
        rec = {"owner": owner, "at": utc_now(), **({"token": held.token} if held else {})}
        if create_exclusive(d / f"{fid:08d}", rec):
            return fid
    raise ConflictError(f"{root}: could not reserve a fit id (1000 attempts)")


def _abandoned(root: Path, path: Path) -> bool:
    """Whether reservation `path` was made under a writer lease that is now dead (a run's
    reservation, made without a lease, is never abandoned: its run record holds it)."""
    try:
        tok = json.loads(path.read_text()).get("token")
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(tok, str) and not lease.state(root, tok)[0]


def release_fit_id(root, fit_id: int) -> None:
    """Give back a reserved fit id that no commit used."""
    (Path(root) / P.FIT_IDS / f"{fit_id:08d}").unlink(missing_ok=True)


def commit_unit(store, prefix: str, tables: dict, operation: str, entry: dict | None = None,
                info: dict | None = None, check=None, name: str | None = None,
                base: log.Snapshot | None = None, remove: list[str] = ()) -> int:
    """Write `tables` as one unit under `prefix` (`fits`, `analyses`) and make it live in one
    commit after snapshot `base` (default: the latest), retiring the units `remove`; returns
    the version. Values of `tables` (kind → …) are Arrow tables, lists of tables or callables
    returning a table or a stream of tables (streamed to the file), written in order (a callable
    may use what an earlier stream computed). A one-shot iterator is refused: the callers retry
    a conflicted commit with the same `tables`, and a consumed stream would write no rows.
    `check` as in `log.commit` (a conflict removes the unit and re-raises). `name` prefixes the
    unit's directory name."""
    once = [k for k, t in tables.items() if isinstance(t, Iterator)]
    if once:   # a retried commit (conflict) would write what is left of it: nothing
        raise TypeError(f"commit_unit: {once} are one-shot iterators; pass a callable that returns "
                        f"a fresh stream")
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


def commit_analysis(store, tables: dict) -> int:
    """Commit one analysis unit (kind → Arrow table: counterfactuals, support, embeddings…);
    returns the log version."""
    return commit_unit(store, P.ANALYSES, tables, "analysis", info={"relations": list(tables)})
