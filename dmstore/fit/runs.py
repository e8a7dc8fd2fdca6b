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

import re
from pathlib import Path

import numpy as np

from ..errors import CommitConflict, ConflictError, InputError, StoreError
from ..storage import log
from ..storage import paths as P
from ..storage.files import create_exclusive, read_json, utc_now
from ..store.commit import MAX_RETRIES, commit_unit, reserve_fit_id
from ..store.fits import fit_runs_row
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_NOT_COMPARED = {"device", "dmstore", "block_size"}   # may differ between a run's machines


def open_run(store, name: str, params: dict, n_shards: int) -> dict:
    """The record of run `name`: created by the first shard (fit id, pinned log version,
    settings), read by the others, which must have the same settings and shard count."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(f"run {name!r}: use letters, digits, '.', '_' or '-' (at most 100), e.g. lasso-a50",
                         params=("run",))
    path = Path(store.root) / P.RUNS / f"{name}.json"
    if not path.exists():
        fid = reserve_fit_id(store.root, f"run {name}")
        rec = {"run": name, "fit_id": fid, "version": log.latest_version(Path(store.root)),
               "n_shards": n_shards, "params": params, "created_at": utc_now()}
        if create_exclusive(path, rec):
            return rec
    rec = _read_run(path, name)
    if rec["n_shards"] != n_shards:
        raise InputError(f"run {name!r} has {rec['n_shards']} shards, not {n_shards}; give shard K/"
                         f"{rec['n_shards']}, or another run name", params=("shard", "run"))
    diff = sorted(k for k in set(rec["params"]) | set(params) if k not in _NOT_COMPARED
                  and rec["params"].get(k) != params.get(k))
    if diff:
        was = ", ".join(f"{k}: {rec['params'].get(k)!r}" for k in diff)
        raise InputError(f"run {name!r} was started with other settings ({was}); "
                         f"give the same settings to every shard, or another run name", params=("run",))
    return rec


def shard_targets(tids: np.ndarray, shard: tuple[int, int]) -> np.ndarray:
    """The K-th of N interleaved shares of the (sorted) targets."""
    return tids[shard[0]::shard[1]]


def _read_run(path: Path, name: str) -> dict:
    """The record of run `name`, checked; a damaged one names the file and the way out."""
    fix = f"delete it to start run {name!r} again (its committed shards stay in the store), or use another run name"
    rec = read_json(path, "run record", fix)
    ok = (isinstance(rec.get("fit_id"), int) and isinstance(rec.get("version"), int) and
          isinstance(rec.get("n_shards"), int) and rec["n_shards"] > 0 and isinstance(rec.get("params"), dict))
    if not ok or rec.get("run") != name:
        raise StoreError(f"{path}: not a valid run record (fit_id, version, n_shards, params); {fix}")
    return rec


def committed_shards(snap, name: str) -> dict:
    """shard index → unit entry of run `name`'s shards committed in `snap`."""
    return {e["shard"][0]: e for e in snap.units.values() if e.get("run") == name}


def commit_shard(store, rec: dict, shard: tuple[int, int], tables: dict, run_spec: tuple, stats: dict):
    """Commit shard K's unit (`tables`: fits, weights, eval_predictions) of run `rec`; the shard
    that completes the run adds its `fit_runs` row (`run_spec` = (experiment, alpha, estimator,
    run columns), with the run's totals, built by `store.fits.fit_runs_row`). Returns
    (version, complete) or None when shard K was committed already (by an earlier attempt)."""
    name, fid, (k, n) = rec["run"], rec["fit_id"], shard
    experiment, alpha, estimator, run = run_spec
    for _ in range(MAX_RETRIES):
        # decide on the snapshot the commit is based on: a shard committing after it makes
        # this commit conflict (check below) and the decision is made again
        base = log.snapshot(store.root)
        done = committed_shards(base, name)
        if k in done:
            return None
        complete = set(done) | {k} == set(range(n))
        out = dict(tables)
        if complete:
            parts = [e["stats"] for e in done.values()] + [stats]
            gaps = [p["max_rel_gap"] for p in parts if p["max_rel_gap"] is not None]
            out["fit_runs"] = fit_runs_row(fid, experiment, alpha, estimator, dict(
                run, n_targets=sum(p["n_targets"] for p in parts), wall_time_s=sum(p["wall_time_s"] for p in parts),
                n_not_converged=sum(p["n_not_converged"] for p in parts), max_rel_gap=max(gaps) if gaps else None))

        def check(commit):
            if any(e.get("run") == name for e in commit.get("add", [])):
                raise CommitConflict(f"another shard of run {name} committed meanwhile")
        try:
            v = commit_unit(store, P.FITS, out, "fit", {"fit_id": fid, "run": name, "shard": [k, n], "stats": stats},
                            info={"fit_id": fid, "run": name, "shard": f"{k}/{n}", "complete": complete},
                            check=check, name=f"{fid:08d}-{k:04d}of{n:04d}", base=base)
            return v, complete
        except CommitConflict:
            continue
    raise ConflictError(f"{store.root}: gave up committing shard {k}/{n} of run {name}")
