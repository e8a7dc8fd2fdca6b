"""Reading a store through one snapshot of its commit log: model rows, streamed chunks, and the
mask and margin matrices the regression needs. Every function reads the units live in
`state.snapshot()` (a pinned state keeps one version; otherwise the latest commit)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import NotFoundError
from ..storage import paths as P
from .fits import copied_fits
from ..storage.files import folder_size
from ..storage.parquet import TARGETS_KEY, decode_ranges, file_metadata, fixed_width_bytes, is_target_major
from ..storage.schema import arrow_schema
from .state import StoreState


def _roles(role) -> list[str] | None:
    if role is None:
        return None
    return [role] if isinstance(role, str) else list(role)


def _numpy(col: pa.ChunkedArray) -> np.ndarray:
    """A float column as numpy, without a copy when it is one chunk."""
    return col.chunk(0).to_numpy() if col.num_chunks == 1 else col.to_numpy()


def _target_major(pf: pq.ParquetFile, n_targets: int, pos: np.ndarray | None) -> np.ndarray:
    """float32 [m, len(pos)] (all targets when `pos` is None) of a target-major margins file:
    target p holds rows [p·m, (p+1)·m); only the row groups overlapping those rows are read."""
    total = pf.metadata.num_rows
    m = total // n_targets if n_targets else 0
    if pos is None:
        return _numpy(pf.read(columns=["margin"])["margin"]).reshape(n_targets, m).T
    sizes = np.array([pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)], np.int64)
    gstart = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    first = np.searchsorted(gstart, pos * m, side="right") - 1
    last = np.searchsorted(gstart, (pos + 1) * m - 1, side="right") - 1
    groups = np.unique(np.concatenate([np.arange(a, b + 1) for a, b in zip(first, last)])) if pos.size else []
    flat = _numpy(pf.read_row_groups(list(groups), columns=["margin"])["margin"])
    cstart = np.zeros(pf.num_row_groups, np.int64)
    cstart[groups] = np.concatenate([[0], np.cumsum(sizes[groups])[:-1]])
    base = pos * m - gstart[first] + cstart[first]
    return flat[base[None, :] + np.arange(m)[:, None]]


def batch_dirs(state: StoreState) -> list[Path]:
    """The live batch directories of the current snapshot, by name."""
    return state.snapshot().paths(P.BATCHES)


def _filtered(bd: Path, experiment, alpha, role, cols):
    need = list(dict.fromkeys(["experiment", "alpha", "role"] + list(cols)))
    t = pq.read_table(bd / "models.parquet", columns=need)
    keep = np.ones(t.num_rows, bool)
    if experiment is not None:
        keep &= t["experiment"].to_numpy(zero_copy_only=False) == experiment
    if alpha is not None:
        keep &= np.isclose(t["alpha"].to_numpy(), float(alpha), rtol=0, atol=1e-12)
    roles = _roles(role)
    if roles is not None:
        keep &= np.isin(t["role"].to_numpy(zero_copy_only=False), roles)
    rows = np.flatnonzero(keep)
    if rows.size == t.num_rows:
        return t.select(cols), rows
    return t.take(pa.array(rows)).select(cols), rows


def models(state: StoreState, experiment=None, alpha=None, role=None, columns=None) -> pa.Table:
    """Rows of `models` (without masks unless asked) matching the filters, by model_id."""
    want = list(columns or [c for c in arrow_schema("models").names if c != "mask"])
    cols = want if "model_id" in want else want + ["model_id"]     # the order, even when not asked for
    parts = [_filtered(bd, experiment, alpha, role, cols)[0] for bd in batch_dirs(state)]
    t = pa.concat_tables(parts)
    return t.take(pc.sort_indices(t["model_id"])).select(want)


def model_ids(state: StoreState, experiment, alpha, role=None) -> np.ndarray:
    """int64 [m]: ids of the matching models, ascending (the row order of the matrices)."""
    return models(state, experiment, alpha, role, ["model_id"])["model_id"].to_numpy()


def require_models(state: StoreState, experiment, alpha, role) -> None:
    """Raise NotFoundError, listing what the store has, when no model matches."""
    if not model_ids(state, experiment, alpha, role).size:
        have = experiments(state)
        raise NotFoundError(f"no models for experiment {experiment!r} alpha {alpha}"
                            + (f" role {role!r}" if role else "")
                            + ("; the store has: " + ", ".join(
                                f"{e} @ {a}" for e, a in sorted({(r['experiment'], r['alpha']) for r in have}))
                               if have else "; the store is empty"))


def batch_targets(batch_dir: Path) -> np.ndarray:
    """int32 [n]: the targets a batch's margins cover, ascending."""
    return decode_ranges(file_metadata(batch_dir / "margins.parquet").get(TARGETS_KEY, ""))


def missing_targets(state: StoreState, experiment, alpha, role, targets) -> np.ndarray:
    """int32 [k]: those of `targets` that some matching model has no margin for, ascending."""
    targets = np.unique(np.asarray(targets, np.int32))
    missing = np.zeros(targets.size, bool)
    for bd in batch_dirs(state):
        if _filtered(bd, experiment, alpha, role, ["model_id"])[1].size:
            missing |= ~np.isin(targets, batch_targets(bd))
    return targets[missing]


def batch_margins(bd: Path, rows: np.ndarray, targets) -> np.ndarray:
    """float32 [len(rows), n]: margins of the batch's model rows `rows` on `targets` (None:
    all). A target-major batch reads only the row groups that hold those targets."""
    pf = pq.ParquetFile(bd / "margins.parquet")
    meta = {k.decode(): v.decode() for k, v in (pf.schema_arrow.metadata or {}).items()}
    have = decode_ranges(meta.get(TARGETS_KEY, ""))
    pos = None
    if targets is not None:
        pos = np.searchsorted(have, targets)
        pos_c = np.minimum(pos, max(have.size - 1, 0))
        missing = (pos >= have.size) | (have[pos_c] != targets) if have.size else np.ones(targets.size, bool)
        if missing.any():
            raise NotFoundError(f"{bd.name}: models there have no margin for example "
                                f"{int(targets[missing][0])} ({int(missing.sum())} target(s) missing); "
                                f"choose targets the experiment recorded")
        if pos.size == have.size:
            pos = None
    if is_target_major(meta):
        full = _target_major(pf, have.size, pos)            # [m, len(pos) or n]
    else:
        full = _numpy(pf.read(columns=["margin"])["margin"]).reshape(-1, have.size) if have.size \
            else np.zeros((0, 0), np.float32)
        if pos is not None:
            full = full[:, pos]
    return full if rows.size == full.shape[0] else full[rows]


def _packed(state: StoreState, t: pa.Table, bd: Path) -> np.ndarray:
    P_ = fixed_width_bytes(t["mask"], (state.d + 7) // 8)
    if P_ is None:
        raise NotFoundError(f"{bd}/models.parquet: a mask is not {(state.d + 7) // 8} packed bytes; "
                            f"the batch is damaged")
    return P_


def iter_chunks(state: StoreState, experiment, alpha, role=None, targets=None, with_masks=True,
                with_margins=True, max_rows: int = 4096, unpack: bool = True) -> Iterator[dict]:
    """Stream the matching models batch by batch (≤ max_rows rows a chunk): dicts with
    model_ids int64[c], roles object[c], mask_ids int64[c], packed uint8[c, ⌈d/8⌉] and masks
    bool[c, d] (when with_masks; masks only when `unpack`) and margins float32[c, n] on
    `targets` (ascending)."""
    targets = None if targets is None else np.asarray(targets, np.int32)
    for bd in batch_dirs(state):
        cols = ["model_id", "role", "mask_id"] + (["mask"] if with_masks else [])
        t, rows = _filtered(bd, experiment, alpha, role, cols)
        if not rows.size:
            continue
        Y = batch_margins(bd, rows, targets) if with_margins else None
        packed = _packed(state, t, bd) if with_masks else None
        ids = t["model_id"].to_numpy()
        roles = np.asarray(t["role"].to_pylist(), dtype=object)
        mask_ids = t["mask_id"].to_numpy()
        for lo in range(0, rows.size, max_rows):
            sl = slice(lo, lo + max_rows)
            out = {"model_ids": ids[sl], "roles": roles[sl], "mask_ids": mask_ids[sl]}
            if with_masks:
                out["packed"] = packed[sl]
                if unpack:
                    out["masks"] = np.unpackbits(packed[sl], axis=1, count=state.d).view(bool)
            if with_margins:
                out["margins"] = Y[sl]
            yield out


def mask_matrix(state: StoreState, experiment, alpha, role=None, dtype=bool, packed: bool = False) -> np.ndarray:
    """bool (or `dtype`) [m, d]: masks of the matching models, rows by ascending model_id.
    `packed=True`: uint8 [m, ceil(d/8)] as stored (np.packbits order, 1/8 of the memory;
    `np.unpackbits(P, axis=1, count=d)` gives the bools)."""
    ids, parts = [], []
    for bd in batch_dirs(state):
        t, rows = _filtered(bd, experiment, alpha, role, ["model_id", "mask"])
        if rows.size:
            ids.append(t["model_id"].to_numpy())
            parts.append(_packed(state, t, bd))
    if not ids:
        require_models(state, experiment, alpha, role)  # raises, listing what the store has
    ids = np.concatenate(ids)
    Pm = np.concatenate(parts)
    if (np.diff(ids) < 0).any():
        Pm = Pm[np.argsort(ids, kind="stable")]
    if packed:
        return Pm
    out = np.unpackbits(Pm, axis=1, count=state.d)
    return out.view(bool) if dtype is bool else out.astype(dtype, copy=False)


def margin_matrix(state: StoreState, experiment, alpha, role=None, targets=None) -> np.ndarray:
    """float32 [m, n]: margins of the matching models (rows by ascending model_id) on
    `targets` (ascending example ids; default: the targets of the first batch)."""
    if targets is not None:
        targets = np.unique(np.asarray(targets)).astype(np.int32)
    ids, parts = [], []
    for bd in batch_dirs(state):
        t, rows = _filtered(bd, experiment, alpha, role, ["model_id"])
        if not rows.size:
            continue
        if targets is None:
            targets = batch_targets(bd)
        ids.append(t["model_id"].to_numpy())
        parts.append(batch_margins(bd, rows, targets))
    if not ids:
        require_models(state, experiment, alpha, role)  # raises, listing what the store has
    ids = np.concatenate(ids)
    Y = np.concatenate(parts) if len(parts) > 1 else np.array(parts[0])  # writable, owned
    return Y if not (np.diff(ids) < 0).any() else Y[np.argsort(ids, kind="stable")]


def experiments(state: StoreState) -> list[dict]:
    """One dict per (experiment, alpha, role): counts of models and masks."""
    t = models(state, columns=["experiment", "alpha", "role", "mask_id"])
    if t.num_rows == 0:
        return []
    g = t.group_by(["experiment", "alpha", "role"]).aggregate([("mask_id", "count"), ("mask_id", "count_distinct")])
    return sorted(({"experiment": r["experiment"], "alpha": r["alpha"], "role": r["role"],
                    "models": r["mask_id_count"], "masks": r["mask_id_count_distinct"]} for r in g.to_pylist()),
                  key=lambda r: (r["experiment"], r["alpha"], r["role"]))


def fit_runs(state: StoreState) -> pa.Table:
    return pa.concat_tables([pq.read_table(f) for f in state.snapshot().files("fit_runs")])


def info(state: StoreState) -> dict:
    """Summary: format, sizes, experiments by role, target counts, fits, bytes on disk."""
    snap = state.snapshot()
    live = sum(os.path.getsize(f) for f in snap.all_files())
    total = 0
    for dirpath, _, files in os.walk(state.root):
        if P.TMP in Path(dirpath).relative_to(state.root).parts:
            continue
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    targets = set()
    for bd in snap.paths(P.BATCHES):
        targets.update(batch_targets(bd).tolist())
    splits = pc.value_counts(state.examples()["split"]).to_pylist()
    fits = fit_runs(state)
    copies = copied_fits(snap)
    return {
        "path": str(state.root),
        "format_version": state.manifest["format_version"],
        "created_at": state.manifest.get("created_at"),
        "train_size": state.d,
        "examples": {s["values"]: s["counts"] for s in splits},
        "experiments": experiments(state),
        "targets_with_margins": len(targets),
        "fits": fits.num_rows,
        "fit_runs": [{**{k: r[k] for k in ("fit_id", "experiment", "alpha", "estimator", "n_targets", "n_fit",
                                           "n_val", "n_not_converged", "created_at")},
                      "by_train": r["fit_id"] in copies}
                     for r in fits.sort_by("fit_id").to_pylist()],
        "version": snap.version,
        "batches": len(snap.paths(P.BATCHES)) - 1,
        "bytes_live": live,
        "bytes_on_disk": total,
        "caches": {c: folder_size(state.root / c) for c in P.CACHES},
    }
