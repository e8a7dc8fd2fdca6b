"""The commit log (store format 2): what is live in a store is what its log says.

    STORE/_log/00000000000000000000.json          commit 0: the store's creation
    STORE/_log/00000000000000000001.json          commit 1: {"add": [...], "remove": [...], ...}
    STORE/_log/00000000000000000050.checkpoint.json   every unit live at version 50

A *unit* is one directory of Parquet files (a batch of models and margins, a fit, an analysis),
named by its path relative to the store (`batches/<id>`). Every change (append, overwrite,
compact, fit, analysis) is one commit that adds and removes whole units. A commit file is written
privately and then hard-linked to its numbered name, which fails if that name exists: two writers
can never both create version v, and a reader never sees a half-written commit. Readers replay the
log (from the newest checkpoint) into a `Snapshot` and read its explicit file list, never a glob.
Files a commit removes stay on disk until `vacuum` deletes them after a retention period, so a
reader holding an older snapshot never finds its files gone.

This is Delta Lake's protocol cut to our needs; unlike one Delta table per relation, a unit spans
relations, so a batch's models and margins become live in the same commit.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import StoreError

LOG = "_log"
CHECKPOINT_EVERY = 50
_COMMIT = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint\.json$")


class CommitConflict(Exception):
    """A commit made since the writer's snapshot invalidates what it was about to commit
    (it removes a unit this commit also removes, or it added a record with one of this commit's
    identities). The writer re-plans from a newer snapshot."""


def _name(version: int, suffix: str = ".json") -> str:
    return f"{version:020d}{suffix}"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


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
        `margins`), by unit name."""
        root = self.root if root is None else root
        return [str(root / p / f"{relation}.parquet") for p in sorted(self.units)
                if relation in self.units[p]["relations"]]

    def missing_files(self) -> list[str]:
        """Files this snapshot names that are gone (deleted by vacuum, or by hand)."""
        return [f for f in self.all_files() if not os.path.exists(f)]

    def all_files(self) -> list[str]:
        return [str(self.root / p / f"{r}.parquet") for p in sorted(self.units)
                for r in self.units[p]["relations"]]

    def apply(self, commit: dict) -> None:
        for p in commit.get("remove", []):
            if p not in self.units:
                raise StoreError(f"{self.root}: log commit {commit['version']} removes {p}, which is "
                                 f"not live; the log is damaged")
            del self.units[p]
        for e in commit.get("add", []):
            self.units[e["path"]] = e
        self.version = commit["version"]


def _listing(root: Path) -> tuple[list[int], list[int]]:
    d = root / LOG
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        raise StoreError(f"{root}: no commit log ({LOG}/); a format-1 store is upgraded with "
                         f"`dmstore migrate {root}`") from None
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
        raise StoreError(f"{root}: the commit log is empty; the store was not created completely")
    return commits[-1]


def read_commit(root: Path, version: int) -> dict:
    p = Path(root) / LOG / _name(version)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise StoreError(f"{root}: log commit {version} is missing") from None
    except ValueError as e:
        raise StoreError(f"{p}: unreadable log commit ({e}); the log is damaged") from None


def snapshot(root, as_of: int | None = None) -> Snapshot:
    """The store's state at version `as_of` (default: the latest commit)."""
    root = Path(root)
    commits, checkpoints = _listing(root)
    if not commits:
        raise StoreError(f"{root}: the commit log is empty; the store was not created completely")
    target = commits[-1] if as_of is None else int(as_of)
    if target < 0 or target > commits[-1]:
        raise StoreError(f"{root}: no version {as_of}; the log holds versions 0..{commits[-1]} "
                         f"(see `dmstore log {root}`)")
    snap = Snapshot(root, -1)
    base = [c for c in checkpoints if c <= target]
    if base:
        cp = json.loads((root / LOG / _name(base[-1], ".checkpoint.json")).read_text())
        snap = Snapshot(root, cp["version"], {e["path"]: e for e in cp["units"]})
    for v in range(snap.version + 1, target + 1):
        snap.apply(read_commit(root, v))
    return snap


def commits_after(root: Path, version: int) -> list[dict]:
    """Every commit after `version`, in order."""
    commits, _ = _listing(Path(root))
    return [read_commit(root, v) for v in commits if v > version]


def _write_exclusive(root: Path, name: str, payload: dict) -> bool:
    """Create `_log/<name>` with `payload` unless it exists (then False). The file is complete
    and durable before its name appears."""
    d = root / LOG
    tmp = d / f".{name}.{os.getpid()}.{time.time_ns()}"
    with open(tmp, "w") as fh:
        fh.write(json.dumps(payload, indent=1) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, d / name)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
        _fsync_dir(d)


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def init(root: Path, add: list[dict], operation: str = "create", info: dict | None = None) -> None:
    """Write commit 0 (a new or migrated store)."""
    (root / LOG).mkdir(exist_ok=True)
    if not _write_exclusive(root, _name(0), {"version": 0, "timestamp": _now(), "operation": operation,
                                             "add": add, "remove": [], "info": info or {}}):
        raise StoreError(f"{root}: the commit log already has a version 0")


def commit(base: Snapshot, operation: str, add: list[dict], remove: list[str] = (),
           info: dict | None = None, check=None) -> int:
    """Append one commit after snapshot `base`: units `add` become live and `remove` (relative
    paths, live in `base`) stop being live, together. When other writers committed first, each of
    their commits is checked: removing one of our `remove`s raises `CommitConflict`, and `check`
    (called with the commit) raises it when that commit invalidates ours; otherwise we take the
    next version. Returns the version committed."""
    root = base.root
    remove = list(remove)
    mine = set(remove)
    for e in add:   # a unit deleted meanwhile (vacuum of a stalled writer, by hand) is never named
        gone = [r for r in e["relations"] if not (root / e["path"] / f"{r}.parquet").is_file()]
        if gone:
            raise StoreError(f"{root}: {e['path']}/{gone[0]}.parquet was deleted before its commit "
                             f"(by vacuum, or by hand); nothing was committed — run the write again")
    v = base.version + 1
    while True:
        payload = {"version": v, "timestamp": _now(), "operation": operation, "add": add,
                   "remove": remove, "info": info or {}}
        if _write_exclusive(root, _name(v), payload):
            if v % CHECKPOINT_EVERY == 0:
                try:
                    write_checkpoint(root, v)
                except OSError:
                    pass   # an optimisation only: the next reader replays a few more commits
            return v
        other = read_commit(root, v)
        gone = mine & set(other.get("remove", []))
        if gone:
            raise CommitConflict(f"commit {v} ({other.get('operation')}) removed {sorted(gone)[0]}")
        if check is not None:
            check(other)
        v += 1


def write_checkpoint(root: Path, version: int) -> None:
    """Record every unit live at `version`, so readers replay at most CHECKPOINT_EVERY commits."""
    snap = snapshot(root, version)
    payload = {"version": version, "timestamp": _now(), "units": [snap.units[p] for p in sorted(snap.units)]}
    tmp = root / LOG / f".cp.{os.getpid()}.{time.time_ns()}"
    tmp.write_text(json.dumps(payload) + "\n")
    os.replace(tmp, root / LOG / _name(version, ".checkpoint.json"))


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
            "models_added": sum(e.get("models", 0) for e in c["add"]),
            "models_removed": sum(live.pop(p, {}).get("models", 0) for p in c["remove"]),
            "info": json.dumps(c.get("info", {}), sort_keys=True),
        })
        live.update((e["path"], e) for e in c["add"])
    return out
