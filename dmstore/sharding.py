"""Fit ids and sharded fit runs: one fit split across processes or machines.

A *run* (`fit(..., shard=(K, N), run=NAME)`) is one fit whose targets are split into N shares;
any scheduler starts the N shards anywhere that sees the store. The first shard to start
records the run in `_runs/<NAME>.json` (created exclusively: one of racing shards wins, the others
read it): its fit id, the log version every shard reads (so all shards use the same models,
even if training goes on meanwhile) and the settings, which every shard must share. Each shard
commits its targets as one fit unit carrying the run's fit id, atomically; the shard whose
commit completes the run also writes the run's single `fit_runs` row, so a fit appears in
`fit_runs` (and in the views that join it) exactly when all its targets are in.

Fit ids are reserved by creating `_fit_ids/<id>` exclusively, so a run's id (taken before its
shards commit) and the id of any other fit never collide, on any machine sharing the store.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from . import log
from .errors import ConflictError, InputError

RUNS, FIT_IDS = "_runs", "_fit_ids"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_NOT_COMPARED = {"device", "dmstore", "block_size"}   # may differ between a run's machines


def _create_exclusive(path: Path, payload: dict) -> bool:
    """Create `path` holding `payload` unless it exists (then False); complete before it appears."""
    path.parent.mkdir(exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{time.time_ns()}"
    with open(tmp, "w") as fh:
        fh.write(json.dumps(payload, indent=1, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def reserve_fit_id(root, owner: str) -> int:
    """A fit id no other fit has or will get: the next after every committed and reserved id."""
    root = Path(root)
    d = root / FIT_IDS
    for _ in range(1000):
        committed = max((e.get("fit_id", 0) for e in log.snapshot(root).units.values()), default=0)
        reserved = max((int(p.name) for p in d.iterdir() if p.name.isdigit()), default=0) if d.exists() else 0
        fid = max(committed, reserved) + 1
        if _create_exclusive(d / f"{fid:08d}", {"owner": owner, "at": log._now()}):
            return fid
    raise ConflictError(f"{root}: could not reserve a fit id (1000 attempts)")


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' → (K, N) with 0 <= K < N."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m or not int(m.group(1)) < int(m.group(2)):
        raise InputError(f"--shard {text!r}: give K/N with 0 <= K < N, e.g. 0/4 … 3/4")
    return int(m.group(1)), int(m.group(2))


def open_run(store, name: str, params: dict, n_shards: int) -> dict:
    """The record of run `name`: created by the first shard (fit id, pinned log version,
    settings), read by the others, which must have the same settings and shard count."""
    if not _NAME.match(name or ""):
        raise InputError(f"--run {name!r}: use letters, digits, '.', '_' or '-' (at most 100), e.g. lasso-a50")
    path = Path(store.root) / RUNS / f"{name}.json"
    if not path.exists():
        fid = reserve_fit_id(store.root, f"run {name}")
        rec = {"run": name, "fit_id": fid, "version": log.latest_version(Path(store.root)),
               "n_shards": n_shards, "params": params, "created_at": log._now()}
        if _create_exclusive(path, rec):
            return rec
    rec = json.loads(path.read_text())
    if rec["n_shards"] != n_shards:
        raise InputError(f"run {name!r} has {rec['n_shards']} shards, not {n_shards}; give --shard K/"
                         f"{rec['n_shards']}, or another --run name")
    diff = sorted(k for k in set(rec["params"]) | set(params) if k not in _NOT_COMPARED
                  and rec["params"].get(k) != params.get(k))
    if diff:
        was = ", ".join(f"{k}: {rec['params'].get(k)!r}" for k in diff)
        raise InputError(f"run {name!r} was started with other settings ({was}); "
                         f"give the same settings to every shard, or another --run name")
    return rec


def shard_targets(tids: np.ndarray, shard: tuple[int, int]) -> np.ndarray:
    """The K-th of N interleaved shares of the (sorted) targets."""
    return tids[shard[0]::shard[1]]


def _done(snap, name: str) -> dict:
    """shard index → unit entry of run `name`'s shards committed in `snap`."""
    return {e["shard"][0]: e for e in snap.units.values() if e.get("run") == name}


def commit_shard(store, rec: dict, shard: tuple[int, int], tables: dict, run_row: pa.Table, stats: dict):
    """Commit shard K's unit (`tables`: fits, weights, eval_predictions) of run `rec`; the shard
    that completes the run adds its `fit_runs` row (`run_row`, with the run's totals). Returns
    (version, complete) or None when shard K was committed already (by an earlier attempt)."""
    from . import layout as L
    from .writer import MAX_RETRIES, commit_unit
    name, fid, (k, n) = rec["run"], rec["fit_id"], shard
    for _ in range(MAX_RETRIES):
        # decide on the snapshot the commit is based on: a shard committing after it makes
        # this commit conflict (check below) and the decision is made again
        base = log.snapshot(store.root)
        done = _done(base, name)
        if k in done:
            return None
        complete = set(done) | {k} == set(range(n))
        out = dict(tables)
        if complete:
            parts = [e["stats"] for e in done.values()] + [stats]
            gaps = [p["max_rel_gap"] for p in parts if p["max_rel_gap"] is not None]
            row = run_row.to_pydict()
            row.update(n_targets=[sum(p["n_targets"] for p in parts)],
                       wall_time_s=[sum(p["wall_time_s"] for p in parts)],
                       n_not_converged=[sum(p["n_not_converged"] for p in parts)],
                       max_rel_gap=[max(gaps) if gaps else None])
            out["fit_runs"] = pa.table(row, schema=run_row.schema)

        def check(commit):
            if any(e.get("run") == name for e in commit.get("add", [])):
                raise log.CommitConflict(f"another shard of run {name} committed meanwhile")
        try:
            v = commit_unit(store, L.FITS, out, "fit", {"fit_id": fid, "run": name, "shard": [k, n], "stats": stats},
                            info={"fit_id": fid, "run": name, "shard": f"{k}/{n}", "complete": complete},
                            check=check, name=f"{fid:08d}-{k:04d}of{n:04d}", base=base)
            return v, complete
        except log.CommitConflict:
            continue
    raise ConflictError(f"{store.root}: gave up committing shard {k}/{n} of run {name}")
