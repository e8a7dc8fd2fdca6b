"""The commit log (store format 2): what is live in a store is what its log says.

    STORE/_log/00000000000000000000.json          commit 0: the store's creation
    STORE/_log/00000000000000000001.json          commit 1: {"add": [...], "remove": [...], ...}
    STORE/_log/00000000000000000050.checkpoint.json   every unit live at version 50

A *unit* is one directory of Parquet files (a batch of models and margins, a fit, an analysis),
named by its path relative to the store (`batches/<id>`). Every change (append, overwrite,
compact, fit, analysis) is one commit that adds and removes whole units. A commit file is written
privately and then hard-linked to its numbered name, which fails if that name exists: two writers
can never both create version v, and a reader never sees a half-written commit. Readers replay the
log (from the newest valid checkpoint) into a `Snapshot` and read its explicit file list, never a
glob. Files a commit removes stay on disk until `vacuum` deletes them after a retention period,
so a reader holding an older snapshot never finds its files gone.

Checkpoints are an optimisation: written atomically and fsynced, and a damaged one is skipped
with a warning (the commits it summarises are replayed instead). A damaged commit is a
StoreError naming its file.

This is Delta Lake's protocol cut to our needs; unlike one Delta table per relation, a unit spans
relations, so a batch's models and margins become live in the same commit.
"""
from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CommitConflict, StoreError
from . import paths as P
from .files import create_exclusive, read_json, utc_now, write_atomic

LOG = P.LOG
CHECKPOINT_EVERY = 50
_COMMIT = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint\.json$")
_UNIT = re.compile(rf"^({'|'.join(P.UNIT_PREFIXES)})/[^/\\]+$")
_FIX = "restore _log/ from a copy of the store, or read an earlier version (see `dmstore log`)"

__all__ = ["CommitConflict", "Snapshot", "snapshot", "commit", "init", "latest_version", "read_commit",
           "commits_after", "history", "write_checkpoint", "CHECKPOINT_EVERY", "LOG"]


def _name(version: int, suffix: str = ".json") -> str:
    return f"{version:020d}{suffix}"


def _is_empty(unit: str) -> bool:
    return unit.rsplit("/", 1)[-1] == P.EMPTY


@dataclass
class Snapshot:
    """The units live at one version: `units` maps a unit's relative path to its entry
    (`{"path", "relations": [...], …counts}`)."""
    root: Path
    version: int
    units: dict = field(default_factory=dict)

    def paths(self, prefix: str) -> list[Path]:
        """Absolute paths of the live units under `prefix` (`batches`, `fits`, `analyses`), by name."""
        return [self.root / p for p in sorted(self.units) if p.split("/", 1)[0] == prefix]

    def files(self, relation: str, root: Path | None = None) -> list[str]:
        """Paths (under `root`, default the store's) of every live file of `relation` (e.g.
        `margins`), by unit name, the empty unit's zero-row file last: DuckDB estimates a file
        list's rows from its first file, and an estimate of 0 rows for `weights` made it build
        the join of `dm_weights` on the weights instead of on `fits` (90 s against 10 s for one
        aggregate over a dense fit's 5·10⁸ weights)."""
        root = self.root if root is None else root
        return [str(root / p / f"{relation}.parquet") for p in sorted(self.units, key=lambda u: (_is_empty(u), u))
                if relation in self.units[p]["relations"]]

    def all_files(self) -> list[str]:
        return [str(self.root / p / f"{r}.parquet") for p in sorted(self.units)
                for r in self.units[p]["relations"]]

    def gone_error(self) -> StoreError | None:
        """The StoreError that names the first file of this snapshot that is gone, or None."""
        gone = self.missing_files()
        if not gone:
            return None
        return StoreError(f"{gone[0]} is missing ({len(gone)} file(s) of this snapshot are gone): deleted "
                          f"by `dmstore vacuum` or by hand; if the store was copied, copy it again whole")

    def missing_files(self) -> list[str]:
        """Files this snapshot names that are gone (deleted by vacuum, or by hand)."""
        return [f for f in self.all_files() if not os.path.exists(f)]

    def apply(self, commit: dict, where: Path) -> None:
        for p in commit["remove"]:
            if p not in self.units:
                raise StoreError(f"{where}: commit {commit['version']} removes {p}, which is not live: "
                                 f"the log is damaged; {_FIX}")
            del self.units[p]
        for e in commit["add"]:
            self.units[e["path"]] = e
        self.version = commit["version"]


def _entry_ok(e) -> bool:
    return (isinstance(e, dict) and isinstance(e.get("path"), str) and bool(_UNIT.match(e["path"]))
            and isinstance(e.get("relations"), list) and all(isinstance(r, str) and r.isidentifier()
                                                             for r in e["relations"]))


def _check_commit(c: dict, version: int, where: Path) -> dict:
    """`c` when it is a well-formed commit of `version`, else a StoreError naming `where`."""
    problem = None
    if c.get("version") != version or isinstance(c.get("version"), bool):
        problem = f"its version is {c.get('version')!r}, not {version}"
    elif not isinstance(c.get("add"), list) or not isinstance(c.get("remove"), list):
        problem = "it lacks the lists 'add' and 'remove'"
    elif not all(_entry_ok(e) for e in c["add"]):
        problem = "an entry of 'add' is not a unit (path under batches/, fits/ or analyses/, relations)"
    elif not all(isinstance(p, str) for p in c["remove"]):
        problem = "an entry of 'remove' is not a unit path"
    elif not isinstance(c.get("timestamp"), str) or not isinstance(c.get("operation"), str):
        problem = "it lacks its timestamp or operation"
    elif not isinstance(c.get("info", {}), dict):
        problem = "its 'info' is not an object"
    if problem:
        raise StoreError(f"{where}: damaged log commit: {problem}; {_FIX}")
    return c


def _listing(root: Path) -> tuple[list[int], list[int]]:
    d = root / LOG
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        version = None
        try:
            version = json.loads((root / P.MANIFEST).read_text()).get("format_version")
        except (OSError, ValueError, AttributeError):
            pass
        if version == 1:
            raise StoreError(f"{root}: no commit log ({LOG}/): a format-1 store; upgrade it with "
                             f"`dmstore migrate {root}`") from None
        raise StoreError(f"{root}: the commit log {LOG}/ is missing, so nothing in the store can be read; "
                         f"restore {LOG}/ from a copy of the store") from None
    except NotADirectoryError:
        raise StoreError(f"{root}: {LOG} is not a directory; restore {LOG}/ from a copy of the store") from None
    commits, checkpoints = [], []
    for n in names:
        m = _COMMIT.match(n)
        if m:
            commits.append(int(m.group(1)))
            continue
        m = _CHECKPOINT.match(n)
        if m:
            checkpoints.append(int(m.group(1)))
    return sorted(commits), sorted(checkpoints)


def latest_version(root: Path) -> int:
    commits, _ = _listing(Path(root))
    if not commits:
        raise StoreError(f"{root}: the commit log is empty; the store was not created completely "
                         f"(create it again)")
    return commits[-1]


def read_commit(root: Path, version: int) -> dict:
    """Commit `version`, checked to be well formed (a StoreError names the file otherwise)."""
    p = Path(root) / LOG / _name(version)
    if not p.exists():
        raise StoreError(f"{p}: log commit {version} is missing: the log is damaged; {_FIX}")
    return _check_commit(read_json(p, "log commit", _FIX), version, p)


def _checkpoint(root: Path, version: int) -> Snapshot | None:
    """The snapshot a checkpoint records, or None (with a warning) when it is damaged: the
    commits it summarises are then replayed."""
    p = root / LOG / _name(version, ".checkpoint.json")
    try:
        cp = read_json(p, "checkpoint", "it is skipped")
        if cp.get("version") != version or not isinstance(cp.get("units"), list) or \
                not all(_entry_ok(e) for e in cp["units"]):
            raise StoreError(f"{p}: not a checkpoint of version {version}")
    except StoreError as e:
        warnings.warn(f"{e}; replaying the commits before it instead (it is rewritten by the next "
                      f"writer to reach a multiple of {CHECKPOINT_EVERY})", stacklevel=3)
        return None
    return Snapshot(root, version, {e["path"]: e for e in cp["units"]})


def snapshot(root, as_of: int | None = None) -> Snapshot:
    """The store's state at version `as_of` (default: the latest commit)."""
    root = Path(root)
    commits, checkpoints = _listing(root)
    if not commits:
        raise StoreError(f"{root}: the commit log is empty; the store was not created completely "
                         f"(create it again)")
    target = commits[-1] if as_of is None else int(as_of)
    if target < 0 or target > commits[-1]:
        raise StoreError(f"{root}: no version {as_of}; the log holds versions 0..{commits[-1]} "
                         f"(see `dmstore log {root}`)")
    snap = Snapshot(root, -1)
    for c in reversed([c for c in checkpoints if c <= target]):
        cp = _checkpoint(root, c)
        if cp is not None:
            snap = cp
            break
    for v in range(snap.version + 1, target + 1):
        snap.apply(read_commit(root, v), root / LOG / _name(v))
    return snap


def commits_after(root: Path, version: int) -> list[dict]:
    """Every commit after `version`, in order."""
    commits, _ = _listing(Path(root))
    return [read_commit(root, v) for v in commits if v > version]


def init(root: Path, add: list[dict], operation: str = "create", info: dict | None = None) -> None:
    """Write commit 0 (a new or migrated store)."""
    (root / LOG).mkdir(exist_ok=True)
    if not create_exclusive(root / LOG / _name(0), {"version": 0, "timestamp": utc_now(), "operation": operation,
                                                    "add": add, "remove": [], "info": info or {}}):
        raise StoreError(f"{root}: the commit log already has a version 0")


def commit(base: Snapshot, operation: str, add: list[dict], remove: list[str] = (),
           info: dict | None = None, check=None) -> int:
    """Append one commit after snapshot `base`: units `add` become live and `remove` (relative
    paths, live in `base`) stop being live, together. When other writers committed first, each of
    their commits is checked: removing one of our `remove`s raises `CommitConflict`, and `check`
    (called with the commit) raises it when that commit invalidates ours; otherwise we take the
    next version. Every unit of `add` must exist (re-checked here). Returns the version committed."""
    root = base.root
    remove = list(remove)
    mine = set(remove)
    for e in add:   # a unit deleted meanwhile (vacuum of a stalled writer, by hand) is never named
        gone = [r for r in e["relations"] if not (root / e["path"] / f"{r}.parquet").is_file()]
        if gone:
            raise StoreError(f"{root}: {e['path']}/{gone[0]}.parquet was deleted before its commit "
                             f"(by vacuum, or by hand); nothing was committed — run the write again")
    stale = [p for p in remove if p not in base.units]
    if stale:   # retired by a commit the caller's snapshot already holds: plan again
        raise CommitConflict(f"{stale[0]} is not live in version {base.version}")
    v = base.version + 1
    while True:
        payload = {"version": v, "timestamp": utc_now(), "operation": operation, "add": add,
                   "remove": remove, "info": info or {}}
        if create_exclusive(root / LOG / _name(v), payload):
            if v % CHECKPOINT_EVERY == 0:
                try:
                    write_checkpoint(root, v)
                except (OSError, StoreError):
                    pass   # an optimisation only: the next reader replays a few more commits
            return v
        other = read_commit(root, v)
        gone = mine & set(other["remove"])
        if gone:
            raise CommitConflict(f"commit {v} ({other['operation']}) removed {sorted(gone)[0]}")
        if check is not None:
            check(other)
        v += 1


def write_checkpoint(root: Path, version: int) -> None:
    """Record every unit live at `version` (atomically, fsynced), so readers replay at most
    CHECKPOINT_EVERY commits."""
    snap = snapshot(root, version)
    payload = {"version": version, "timestamp": utc_now(), "units": [snap.units[p] for p in sorted(snap.units)]}
    write_atomic(Path(root) / LOG / _name(version, ".checkpoint.json"), json.dumps(payload) + "\n")


def history(root) -> list[dict]:
    """One dict per commit: version, timestamp, operation, units and models added/removed."""
    root = Path(root)
    commits, _ = _listing(root)
    out, live = [], {}
    for v in commits:
        c = read_commit(root, v)
        out.append({
            "version": v, "timestamp": c["timestamp"], "operation": c["operation"],
            "units_added": len(c["add"]), "units_removed": len(c["remove"]),
            "models_added": sum(e.get("models", 0) for e in c["add"] if isinstance(e.get("models", 0), int)),
            "models_removed": sum(live.pop(p, {}).get("models", 0) for p in c["remove"]),
            "info": json.dumps(c.get("info", {}), sort_keys=True),
        })
        live.update((e["path"], e) for e in c["add"])
    return out
