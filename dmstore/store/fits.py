"""Fit results, one owner: what makes two fits the same, the `fit_runs` row, the commit of a fit
unit that re-checks its identity against every commit made since its snapshot, and
`require_fit`.

    claim = Claim(name, experiment, alpha, identity(name, experiment, alpha, params, n_fit, n_val))
    row = existing(store, claim)                 # an identical stored fit (reuse it), or None
    fit_id = commit(store, tables, claim, base)  # SameFit when one was committed meanwhile

A fit's identity is the digest of one canonical record (`canonical`): for `fit`, its settings
(`fit_runs.params`) and model counts; for `ingest scores`, the score file's digest, layout,
targets, top-k and `--param` pairs; for `attribute`, the method's settings (library, models,
seed, recipe, targets, projection, damping) — never timings. Names of external fits are
compared case-insensitively (`same_name`). Every fit unit's log entry carries its name,
experiment, alpha and identity, so a writer checks at commit time, against each commit made
after the snapshot it decided on, that nobody committed the same identity (then the other fit
is the answer: `SameFit`) or, in mode 'error', the same name (ConflictError).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pyarrow as pa

from ..errors import CommitConflict, ConflictError, NotFoundError
from ..storage import lease, log
from ..storage import paths as P
from ..storage.files import utc_now
from .commit import MAX_RETRIES, commit_unit, release_fit_id, reserve_fit_id

SCORE_KEYS = ("source", "file", "kind", "digest", "layout", "targets", "top_k", "params")
ATTRIBUTE_KEYS = {"method", "library", "models_trained", "recipe"}   # an older attribute fit's params
NOT_IDENTITY = {"compute_seconds", "n_clamped", "run", "n_shards", "runtime"}   # timings, outcomes, run-time choices, shards


def canonical(name: str, experiment: str, alpha: float, params: dict, n_fit: int, n_val: int) -> dict:
    """The record that decides whether two fits are the same (see the module docstring)."""
    p = {k: v for k, v in params.items() if k not in NOT_IDENTITY}
    inner = {k: v for k, v in (p.get("params") or {}).items() if k not in NOT_IDENTITY}
    if p.get("source") == "attribute" or (p.get("source") == "scores" and ATTRIBUTE_KEYS <= set(inner)):
        basis = {"attribute": inner}
    elif p.get("source") == "scores":
        basis = {"scores": {k: (inner if k == "params" else p.get(k)) for k in SCORE_KEYS}}
    else:
        basis = {"fit": p, "n_fit": int(n_fit), "n_val": int(n_val)}
    return {"name": name, "experiment": experiment, "alpha": float(alpha), **basis}


def identity(name: str, experiment: str, alpha: float, params: dict, n_fit: int, n_val: int) -> str:
    """The digest of `canonical(...)`: equal exactly when the fits are the same."""
    text = json.dumps(canonical(name, experiment, alpha, params, n_fit, n_val), sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def row_identity(row: dict) -> str:
    """The identity of a stored `fit_runs` row."""
    return identity(row["estimator"], row["experiment"], row["alpha"], json.loads(row["params"] or "{}"),
                    row["n_fit"], row["n_val"])


def same_name(a: str, b: str) -> bool:
    return a.casefold() == b.casefold()


@dataclass
class Claim:
    """What a fit about to be committed claims: its name on (experiment, alpha), its identity,
    and whether no other fit may carry the name (`unique_name`: ingest scores' mode 'error')."""
    name: str
    experiment: str
    alpha: float
    key: str
    unique_name: bool = False
    reuse: bool = True        # an identical fit committed meanwhile is the answer (else: commit anyway)

    def entry(self) -> dict:
        """The fields of the unit's log entry that later writers check."""
        return {"estimator": self.name, "experiment": self.experiment, "alpha": self.alpha, "identity": self.key}

    def named(self, row_or_entry: dict) -> bool:
        return (same_name(str(row_or_entry.get("estimator", "")), self.name)
                and row_or_entry.get("experiment") == self.experiment and row_or_entry.get("alpha") == self.alpha)


class SameFit(Exception):
    """A fit with the claimed identity was committed after the snapshot (internal to `commit`)."""

    def __init__(self, fit_id: int):
        super().__init__(fit_id)
        self.fit_id = fit_id


def rows(store) -> list[dict]:
    """Every fit_runs row of the store's snapshot, newest first."""
    return sorted(store.fit_runs().to_pylist(), key=lambda r: -r["fit_id"])


def existing(store, claim: Claim) -> dict | None:
    """The fit_runs row of the newest stored fit with `claim`'s identity, or None; with
    `unique_name`, a ConflictError when another fit carries the name."""
    stored = rows(store)
    for r in stored:
        if r["experiment"] == claim.experiment and r["alpha"] == claim.alpha and row_identity(r) == claim.key:
            return r
    if claim.unique_name:
        for r in stored:
            if claim.named(r):
                raise name_taken(claim, r["fit_id"], json.loads(r["params"] or "{}").get("file"))
    return None


def named(store, claim: Claim) -> list[dict]:
    """fit_runs rows of every fit carrying `claim`'s name (case-insensitively) on its experiment and alpha."""
    return [r for r in rows(store) if claim.named(r)]


def name_taken(claim: Claim, fit_id: int, source: str | None = None) -> ConflictError:
    src = f" (from {source})" if source else ""
    return ConflictError(f"fit {fit_id} is already named {claim.name!r} on {claim.experiment!r} at alpha "
                         f"{claim.alpha}{src}; use mode 'overwrite' to replace it, or another name",
                         params=("mode", "name"))


BY_TRAIN = "weights_by_train"   # the relation of a fit's train-major copy (`engine.by_train`)


def copied_fits(snapshot) -> dict[int, str]:
    """fit id → unit path of every train-major copy (`weights_by_train`) live in `snapshot`."""
    return {e["fit_id"]: p for p, e in snapshot.units.items()
            if BY_TRAIN in e.get("relations", ()) and isinstance(e.get("fit_id"), int)}


def units_of(snapshot, fit_ids) -> list[str]:
    """The unit paths (relative) of these fits in `snapshot`."""
    ids = set(fit_ids)
    return [p for p, e in snapshot.units.items() if e.get("fit_id") in ids]


def commit(store, tables, claim: Claim | None, base: log.Snapshot, info: dict, remove: list[str] = ()) -> int:
    """Commit one fit unit after snapshot `base` (the one the caller decided on): `tables(fit_id)`
    gives its tables for a fit id reserved first (unique across concurrent fits and sharded runs),
    retiring the units `remove` in the same commit. Every commit made since `base` is checked:
    one that added this claim's identity raises SameFit (nothing of ours is committed), one that
    added its name in `unique_name` mode raises ConflictError. Returns the fit id."""
    with lease.held(store.root, "fit"):
        for _ in range(MAX_RETRIES):
            fit_id = reserve_fit_id(store.root, "fit")

            def check(c, fit_id=fit_id):
                for e in c.get("add", []):
                    if e.get("fit_id") == fit_id:   # a writer of an older dmstore that reserves no ids
                        raise CommitConflict(f"fit id {fit_id} was committed meanwhile")
                    if claim is None or "fit_id" not in e:
                        continue
                    if claim.reuse and e.get("identity") == claim.key:
                        raise SameFit(e["fit_id"])
                    if claim.unique_name and claim.named(e):
                        raise name_taken(claim, e["fit_id"])
            entry = {"fit_id": fit_id, **(claim.entry() if claim else {})}
            try:
                commit_unit(store, P.FITS, tables(fit_id), "fit", entry, info={"fit_id": fit_id, **info},
                            check=check, name=f"{fit_id:08d}", base=base, remove=remove)
                return fit_id
            except CommitConflict:
                release_fit_id(store.root, fit_id)
                continue
            except BaseException:   # nothing was committed: the id goes back (no fit ever had it)
                release_fit_id(store.root, fit_id)
                raise
    raise ConflictError(f"{store.root}: gave up after {MAX_RETRIES} attempts to take a fit id")


def fit_runs_row(fit_id: int, experiment: str, alpha: float, estimator: str, run: dict) -> pa.Table:
    """The one `fit_runs` row of a fit. `run`: n_fit, n_val, val_source, n_targets, n_lambdas,
    lambda_min_ratio, tol, max_iter, dtype, device, wall_time_s, max_rel_gap, n_not_converged,
    params (a dict, stored as sorted JSON)."""
    from ..storage.schema import arrow_schema
    return pa.table({
        "fit_id": [int(fit_id)], "experiment": [experiment], "alpha": [float(alpha)], "estimator": [estimator],
        "created_at": [utc_now("seconds")], "n_fit": [int(run["n_fit"])], "n_val": [int(run["n_val"])],
        "val_source": [run["val_source"]], "n_targets": [int(run["n_targets"])], "n_lambdas": [run["n_lambdas"]],
        "lambda_min_ratio": [run["lambda_min_ratio"]], "tol": [run["tol"]], "max_iter": [run["max_iter"]],
        "dtype": [run["dtype"]], "device": [run["device"]], "wall_time_s": [float(run["wall_time_s"])],
        "max_rel_gap": [run["max_rel_gap"]], "n_not_converged": [int(run["n_not_converged"])],
        "params": [json.dumps(run["params"], sort_keys=True)],
    }, schema=arrow_schema("fit_runs"))


def fits_listing(have: dict) -> str:
    """'1 (lasso), 2 (trak)' for fit id → estimator (at most 20)."""
    items = list(have.items())
    return ", ".join(f"{k} ({v})" for k, v in items[:20]) + (" …" if len(items) > 20 else "")


def not_found(fit_id, have: dict, where: str = "this store") -> NotFoundError:
    """The one message for a fit id the store does not hold, naming the fits it does."""
    tail = (f"its fits are {fits_listing(have)} (SELECT * FROM fit_runs)" if have
            else "it has no fits yet (run `dmstore fit`, `dmstore attribute` or `dmstore ingest scores`)")
    return NotFoundError(f"no fit {fit_id} in {where}; {tail}", params=("fit_id",))


def require_fit(store, fit_id) -> dict:
    """The fit_runs row of fit `fit_id` (of the store's snapshot), or the NotFoundError of `not_found`."""
    stored = rows(store)
    for r in stored:
        if r["fit_id"] == int(fit_id):
            return r
    raise not_found(fit_id, {r["fit_id"]: r["estimator"] for r in reversed(stored)}, str(store.root))
