"""Vacuum: delete what no snapshot, reader or writer of a store needs any more.

Deleted: unit directories retired by a commit (compact, overwrite) more than the retention
period ago (a reader of an older snapshot may still read them until then); orphan units that no
commit names and whose writer is dead (no snapshot ever named them, so they need no retention);
private temp entries of dead writers (`.tmp/`, `_log/`, `_runs/`, `_fit_ids/`, `_leases/`). Never
deleted, whatever the retention: a unit whose writer's lease is alive (`lease`: it may still
commit it, on any machine), a unit live at the version an unfinished sharded fit run is pinned
to (its remaining shards read it), and anything live now.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import time
from pathlib import Path

from ..errors import InputError
from . import lease, log
from . import paths as P
from .files import folder_size
from .units import clean_stale_temps, remove_unit, writer_lock

SAFE_RETAIN_HOURS = 1.0   # below this, readers of recent snapshots may lose files: needs force
_PREFIXES = P.UNIT_PREFIXES
_PRIVATE = (P.LOG, P.RUNS, P.FIT_IDS, P.LEASES)   # their '.'-temp files


def _unfinished_runs(root: Path, latest: log.Snapshot) -> dict[str, int]:
    """name → pinned version of every sharded fit run whose fit_runs row is not committed."""
    out = {}
    d = root / P.RUNS
    if not d.exists():
        return out
    done = {e.get("run") for e in latest.units.values() if e.get("run") and "fit_runs" in e["relations"]}
    for p in sorted(d.glob("*.json")):
        try:
            rec = json.loads(p.read_text())
            name, version = rec["run"], int(rec["version"])
        except (OSError, ValueError, KeyError, TypeError):
            continue   # a damaged record: its run cannot continue anyway (open_run says so)
        if name not in done:
            out[name] = version
    return out


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size if path.exists() else 0


def vacuum(root, retain_hours: float = 168.0, dry_run: bool = False, force: bool = False,
           caches: bool = False) -> dict:
    """Delete units and temp files no longer needed (see the module docstring) that are older
    than `retain_hours`. A retention below SAFE_RETAIN_HOURS needs `force=True` (readers of a
    recent snapshot would find its files gone). Returns {'deleted': [relative paths], 'bytes',
    'version', 'kept': {reason: [relative paths]}, 'temps': number of temp entries deleted,
    'runs': {unfinished run: the version it pins}, 'caches': {cache folder: {files, bytes}} deleted
    with `caches`, 'caches_kept': why not}. An unfinished run pins its version until it
    completes or its record `_runs/NAME.json` is removed. The caches (`paths.CACHES`: retrained
    chunks, attribution models) are deterministic to rebuild; they are kept while any writer's
    lease is alive (a running counterfactual or attribution may be reading them)."""
    root = Path(root)
    if retain_hours < 0:
        raise InputError(f"retain_hours must be >= 0, got {retain_hours}")
    if retain_hours < SAFE_RETAIN_HOURS and not force:
        raise InputError(f"retain_hours={retain_hours:g} is below the safe minimum of {SAFE_RETAIN_HOURS:g} h: "
                         f"a reader of a snapshot from the last hour would find its files deleted. Pass "
                         f"force=True if no reader needs them (running writers are protected either way)")
    now = time.time()
    cutoff = now - retain_hours * 3600
    start = log.snapshot(root)
    removed_at: dict[str, float] = {}
    for c in log.commits_after(root, -1):
        ts = _dt.datetime.fromisoformat(c["timestamp"]).timestamp()
        for p in c.get("remove", []):
            removed_at[p] = ts
    pinned: dict[str, str] = {}
    runs = _unfinished_runs(root, start)
    for name, version in runs.items():
        if version <= start.version:
            try:
                for p in log.snapshot(root, version).units:
                    pinned.setdefault(p, name)
            except Exception:   # noqa: BLE001  the pinned version does not replay: nothing to keep
                pass
    kept: dict[str, list] = {"live writer": [], "retention": [], "pinned run": []}
    candidates = []
    for prefix in _PREFIXES:
        top = root / prefix
        if not top.exists():
            continue
        for unit in sorted(top.iterdir()):
            rel = f"{prefix}/{unit.name}"
            if rel in start.units or not unit.is_dir():
                continue
            if rel in pinned:
                kept["pinned run"].append(rel)
                continue
            when = removed_at.get(rel)
            if when is None:
                # never committed, so no snapshot ever read it: an orphan as soon as its writer
                # is dead (no retention needed); a live writer may still commit it
                mtime = max((f.stat().st_mtime for f in unit.iterdir()), default=unit.stat().st_mtime)
                if lease.entry_alive(root, unit.name, mtime, now):
                    kept["live writer"].append(rel)
                else:
                    candidates.append((rel, unit))
                continue
            if when > cutoff:
                kept["retention"].append(rel)
                continue
            candidates.append((rel, unit))
    # a writer whose lease ended just now committed before it ended: re-read what is live
    live = log.snapshot(root).units
    deleted, nbytes = [], 0
    for rel, unit in candidates:
        if rel in live:
            continue
        nbytes += _size(unit)
        deleted.append(rel)
        if not dry_run:
            remove_unit(root, unit)
    temps = 0 if dry_run else _clean_temps(root, now)
    out = {"deleted": deleted, "bytes": nbytes, "version": start.version,
           "kept": {k: v for k, v in kept.items() if v}, "temps": temps,
           "runs": {n: v for n, v in runs.items() if n in set(pinned.values())}, "caches": {}}
    if caches:
        alive = [why for tok in _lease_tokens(root) for ok, why in [lease.state(root, tok, now)] if ok]
        if alive:
            out["caches_kept"] = f"a running writer may be using them ({alive[0]})"
        else:
            for name in P.CACHES:
                d = root / name
                if d.is_dir():
                    out["caches"][name] = folder_size(d)
                    if not dry_run:
                        shutil.rmtree(d, ignore_errors=True)
    return out


def _lease_tokens(root: Path) -> list[str]:
    d = root / P.LEASES
    return [f.stem for f in d.glob("*.json")] if d.is_dir() else []


def _clean_temps(root: Path, now: float) -> int:
    """Delete temp entries of dead writers: `.tmp/` entries, '.'-prefixed temp files of the
    private folders older than the lease TTL (each lives for milliseconds), and dead leases."""
    n = 0
    with writer_lock(root):
        n += clean_stale_temps(root)
    for folder in _PRIVATE:
        d = root / folder
        if not d.exists():
            continue
        for f in d.iterdir():
            try:
                mtime = f.stat().st_mtime
            except FileNotFoundError:
                continue
            dead_temp = f.name.startswith(".") and mtime < now - lease.TTL_S
            dead_lease = folder == P.LEASES and f.suffix == ".json" and not lease.state(root, f.stem, now)[0]
            if dead_temp or dead_lease:
                try:
                    shutil.rmtree(f) if f.is_dir() else os.unlink(f)
                    n += 1
                except FileNotFoundError:
                    pass
    return n
