"""Attribution scores of any method (TRAK, influence functions, TracIn, gradient similarity, a
user's own) brought in as a fit, so every analytic and the same held-out models judge them.

    ingest_scores(store, "trak.npy", "trak", "digits", 0.5, layout="train-major", params={"proj_dim": 512})

Sources: a dense `.npy` (memory-mapped, read by blocks of targets), a `.pt` torch tensor
(memory-mapped), a TRAK save directory (its `scores/<experiment>.mmap`, train-major) or its
`.mmap` file, or Parquet/CSV triples `target_id, train_id, score`. Dense layouts:
target-major [n_targets, d] (captum, ours) or train-major [d, n_targets] (dattri, traker);
targets are the store's `targets` ('test' by default) in ascending id order.

Each target's scores s_j get an affine calibration fitted by least squares on the fit models
(role 'fit'; past CALIBRATION_MODELS of them, a seeded sample of that many — `fit --models`'s
nested order — since two numbers per target need no more, and each fit model costs a
[d] × [d, n] product: the LDS is unchanged, as a positive scale keeps every ranking): the
prediction for a mask x is bias_j + scale_j · Σ_{i∈x} s_ij. The scale is kept positive (at
least 10⁻³·σ_y/σ_s), so the ranking of a method's scores — and its LDS — is its own; a target
whose scores anti-correlate with its outputs gets a near-constant prediction (the count is
recorded). Weights are stored calibrated (weight = scale · score), `scale` in `fits`,
so predictions, removal effects and MSE are in margin units for every method. Eval predictions
are a matrix product (torch, GPU when present) by blocks of targets.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from ..errors import InputError
from ..fit.params import resolve_device
from ..fit.results import FitResult
from ..progress import progress as progress_bar
from ..storage import lease
from ..storage.units import private_file
from ..store.fits import (Claim, SameFit, commit, existing, fit_runs_row, identity, named, require_fit, same_name,
                          units_of)
from ..store.validate import check_alpha, read_table_file
from .npy import load_npy

LAYOUTS = ("target-major", "train-major")
MODES = ("error", "overwrite")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
MIN_SCALE = 1e-3            # of σ_y/σ_s: the smallest calibration scale (keeps the ranking)
BLOCK_BYTES = 128 << 20     # a block of targets' scores as float32 [d, block]
WEIGHT_TABLE_ROWS = 1 << 22  # weights per table handed to the writer (dense rows: views of the block)
CALIBRATION_MODELS = 512    # fit models the calibration reads at most (a seeded sample beyond)


def file_digest(path: Path) -> str:
    """blake2b of a file's bytes (a directory: of its score file)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Scores:
    """A score matrix opened for reading by blocks: `block(pos)` → float32 [d, len(pos)] of the
    targets at positions `pos` of `target_ids` (ascending); `where(pos, i)` names a cell."""
    path: Path
    file: Path                  # the file whose bytes were hashed
    kind: str                   # 'npy' | 'pt' | 'trak' | 'triples'
    layout: str
    target_ids: np.ndarray      # int32 [n]
    array: object = None        # dense: [n, d] or [d, n]; triples: None
    triples: tuple | None = None   # (target positions, train ids, scores) for triples
    rows: np.ndarray | None = None  # triples: the file's data row (0-based) of each sorted triple

    def first_row(self, target: int) -> int:
        """The first data row (0-based) of the file holding `target` (triples)."""
        pos = int(np.searchsorted(self.target_ids, target))
        return int(self.rows[self.triples[0] == pos].min())

    def block(self, pos: np.ndarray) -> np.ndarray:
        """float32 [nb, d]: the scores of targets `pos` (consecutive positions), target-major and
        C-ordered, so a target's weights are one contiguous row (its rows of `weights` without a
        transposed copy)."""
        if self.triples is not None:
            tp, ti, sc = self.triples
            lo, hi = np.searchsorted(tp, [pos[0], pos[-1] + 1])
            out = np.zeros((pos.size, self.d), np.float32)
            out[tp[lo:hi] - pos[0], ti[lo:hi]] = sc[lo:hi]
            return out
        a = self.array
        sub = a[pos[0]:pos[-1] + 1] if self.layout == "target-major" else a[:, pos[0]:pos[-1] + 1]
        if isinstance(sub, torch.Tensor):
            sub = sub.to(torch.float32).numpy()
        sub = sub if self.layout == "target-major" else sub.T
        out = np.empty(sub.shape, np.float32)       # owned, C-order [nb, d]: one (strided) cast-and-copy
        with np.errstate(over="ignore", invalid="ignore"):   # beyond float32 becomes inf, refused with its cell below
            out[...] = sub
        return out

    @property
    def d(self) -> int:
        return self._d

    def where(self, pos: int, i: int) -> str:
        if self.triples is not None:
            return f"{self.path}: the row of target {int(self.target_ids[pos])}, train id {i}"
        r, c = (pos, i) if self.layout == "target-major" else (i, pos)
        return f"{self.path}: row {r}, column {c} (target {int(self.target_ids[pos])}, train id {i})"


def _dense(path: Path, kind: str, arr, layout: str, d: int, targets: np.ndarray) -> Scores:
    if arr.ndim != 2:
        raise InputError(f"{path}: scores must be a 2-D matrix, got shape {tuple(arr.shape)}")
    n = targets.size
    want = {"target-major": (n, d), "train-major": (d, n)}
    shape = tuple(int(x) for x in arr.shape)
    if shape != want[layout]:
        other = "train-major" if layout == "target-major" else "target-major"
        hint = (f"; it fits layout {other}: pass layout '{other}' (--layout {other})" if shape == want[other]
                else f"; neither {want['target-major']} (target-major) nor {want['train-major']} (train-major) "
                     f"matches: the store has d = {d} train examples and {n} targets were chosen")
        raise InputError(f"{path}: shape {shape} is not {want[layout]} for layout {layout}{hint}",
                         params=("layout",))
    floating = arr.is_floating_point() if isinstance(arr, torch.Tensor) else \
        (arr.dtype.fields is None and np.issubdtype(arr.dtype, np.floating))
    if not floating:
        what = "a structured (record) dtype" if getattr(arr.dtype, "fields", None) else f"dtype {arr.dtype}"
        raise InputError(f"{path}: scores have {what}; expected a plain floating-point matrix "
                         f"(e.g. np.save(path, scores.astype(np.float32)))")
    s = Scores(path, path, kind, layout, targets.astype(np.int32), arr)
    s._d = d
    return s


def _trak_file(path: Path, experiment: str | None) -> Path:
    """The score file of a TRAK save directory (`experiments.json` names them)."""
    meta = path / "experiments.json"
    if not meta.exists():
        raise InputError(f"{path}: a directory, but no TRAK save directory (no experiments.json); give a "
                         f"score file (.npy, .pt, .mmap, .parquet, .csv)")
    try:
        exps = json.loads(meta.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{meta}: unreadable ({e}); it should be the JSON object TRAK writes") from None
    if not isinstance(exps, dict):
        raise InputError(f"{meta}: holds a JSON {type(exps).__name__}, not the object of experiments TRAK writes "
                         f"(experiment name -> its settings); give TRAK's own save directory")
    done = {k: v for k, v in exps.items() if isinstance(v, dict) and v.get("scores_finalized")}
    if experiment is None:
        if len(done) != 1:
            raise InputError(f"{path}: {len(done)} finalized TRAK experiments ({', '.join(done) or 'none'}); "
                             f"name one with trak_experiment", params=("trak_experiment",))
        experiment = next(iter(done))
    if experiment not in done:
        raise InputError(f"{path}: no finalized TRAK experiment {experiment!r}; finalized: {', '.join(done) or 'none'}",
                         params=("trak_experiment",))
    return path / "scores" / f"{experiment}.mmap"


def _triples(path: Path, d: int, n_examples: int) -> Scores:
    t = read_table_file(path, str(path))
    need = ("target_id", "train_id", "score")
    missing = [c for c in need if c not in t.column_names]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; triples have target_id, train_id, score")
    if t.num_rows == 0:
        raise InputError(f"{path}: no rows; give at least one triple target_id, train_id, score")
    for c in need:
        typ = t.schema.field(c).type
        ok = pa.types.is_integer(typ) if c != "score" else (pa.types.is_floating(typ) or pa.types.is_integer(typ))
        if not ok:
            raise InputError(f"{path}: column {c} has type {typ}, not {'an integer' if c != 'score' else 'a number'}")
        if t[c].null_count:
            row = int(np.flatnonzero(t[c].is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(f"{path}: data row {row + 1}: {c} is empty; every triple needs all three values")
    for name, hi in (("train_id", d), ("target_id", n_examples)):
        col = t[name]   # checked in its own type: an unsigned 2**64-1 is not -1
        top = np.iinfo(col.type.to_pandas_dtype()).max
        bad = pc.less(col, pa.scalar(0, col.type)).to_numpy(zero_copy_only=False)
        if hi <= top:
            bad |= pc.greater_equal(col, pa.scalar(hi, col.type)).to_numpy(zero_copy_only=False)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(f"{path}: data row {row + 1}: {name} {col[row].as_py()} is not "
                             f"{'a train example' if name == 'train_id' else 'an example'} of the store "
                             f"(0..{hi - 1})")
    tid = t["target_id"].to_numpy().astype(np.int64)
    iid = t["train_id"].to_numpy().astype(np.int64)
    sc = t["score"].to_numpy().astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(sc.astype(np.float32)))
    if bad.size:
        raise InputError(f"{path}: data row {bad[0] + 1}: score {sc[bad[0]]} is not a finite float32; "
                         f"{bad.size} such row(s)")
    order = np.lexsort((iid, tid))
    key = tid[order] * (d + 1) + iid[order]
    dup = np.flatnonzero(np.diff(key) == 0)
    if dup.size:
        row = int(order[dup[0] + 1])
        raise InputError(f"{path}: data row {row + 1}: target {int(tid[row])}, train id {int(iid[row])} appears "
                         f"twice; give each pair once")
    targets = np.unique(tid).astype(np.int32)
    pos = np.searchsorted(targets, tid[order])
    s = Scores(path, path, "triples", "triples", targets, None,
               (pos.astype(np.int64), iid[order].astype(np.int64), sc[order].astype(np.float32)), order)
    s._d = d
    return s


def open_scores(store, path, layout: str | None, targets, trak_experiment: str | None = None) -> Scores:
    """Open a score source for reading by blocks (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not (path.is_file() or path.is_dir()):   # a FIFO, a device: refused before anything opens it
        raise InputError(f"{path}: not a regular file (a pipe, socket or device); write the scores to a file first")
    d, n_ex = store.d, store.n_examples
    if trak_experiment is not None and not path.is_dir():
        raise InputError(f"{path}: trak_experiment names an experiment of a TRAK save directory; this is a "
                         f"file: drop trak_experiment", params=("trak_experiment",))
    if layout is not None and layout not in LAYOUTS:
        raise InputError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}", params=("layout",))
    suffix = path.suffix.lower()
    if path.is_dir() or suffix in (".parquet", ".pq", ".csv"):
        if path.is_dir():
            if layout == "target-major":
                raise InputError(f"{path}: TRAK saves its scores train-major; drop layout or give 'train-major'",
                                 params=("layout",))
            f = _trak_file(path, trak_experiment)
            s = _dense(path, "trak", load_npy(f, 2), "train-major", d,
                       store.resolve_targets("test" if targets is None else targets))
            s.file = f
            return s
        if targets is not None and not (isinstance(targets, str) and targets == "file"):
            raise InputError(f"{path}: triples name their targets (target_id); drop targets", params=("targets",))
        return _triples(path, d, n_ex)
    tids = store.resolve_targets("test" if targets is None else targets)
    layout = layout or "target-major"
    if suffix == ".pt":
        return _dense(path, "pt", _load_pt(path), layout, d, tids)
    return _dense(path, "npy", load_npy(path, 2), layout, d, tids)


def _load_pt(path: Path) -> torch.Tensor:
    """A dense score tensor from a `.pt` file (memory-mapped), detached from autograd."""
    import zipfile
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path}: not in the zip format torch.save writes (since torch 1.6); a legacy or "
                         f"other-format file cannot be memory-mapped: load it and save it again with "
                         f"torch.save(tensor, path)")
    try:
        arr = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as e:   # noqa: BLE001  torch raises many kinds for a bad file
        raise InputError(f"{path}: not a readable torch file ({str(e).splitlines()[0]}); save the score "
                         f"tensor with torch.save(tensor, path)") from None
    if not isinstance(arr, torch.Tensor):
        raise InputError(f"{path}: holds a {type(arr).__name__}, not a tensor; save the score tensor itself")
    if arr.layout != torch.strided:
        raise InputError(f"{path}: a {str(arr.layout).replace('torch.', '')} (sparse) tensor; save "
                         f"tensor.to_dense(), or give the non-zero scores as triples (target_id, train_id, score)")
    return arr.detach()   # an nn.Parameter (or a tensor that requires grad) reads as plain data


def check_name(name) -> str:
    """An external fit's name: a valid identifier, distinct (case-insensitively) from the built-in estimators."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(f"name {name!r}: start with a letter; letters, digits, '.', '_', '-' (e.g. trak)",
                         params=("name",))
    from ..fit.estimators import ESTIMATORS
    clash = [e for e in ESTIMATORS if same_name(e, name)]
    if clash:
        raise InputError(f"name {name!r} is dmstore's own estimator {clash[0]!r} (names are compared without "
                         f"case); name the method (e.g. trak, if)", params=("name",))
    return name


def ingest_scores(store, path, name: str, experiment: str, alpha: float, layout: str | None = None,
                  targets=None, params: dict | None = None, mode: str = "error", top_k: int | None = None,
                  trak_experiment: str | None = None, device: str = "auto", progress: bool | None = None,
                  source: str = "scores", calibration_models: int | None = CALIBRATION_MODELS) -> FitResult:
    """Bring a score matrix in as a fit named `name` (its fit_runs.estimator); see the module
    docstring. `params` (str → str) are recorded with the file's digest and layout; `top_k`
    keeps the k largest |scores| per target; mode 'error' refuses a different fit of that name
    (an identical one is reused; names are compared without case), 'overwrite' replaces it in
    the same commit. `source` 'attribute' (from `dmstore attribute`): `params` are the method's
    settings, which alone make two fits the same. `calibration_models`: the most fit models the
    calibration reads (a seeded sample beyond; None: all of them; recorded, and part of the
    identity, only when it samples). Identity and name are checked again at commit against every
    commit made meanwhile (`store.fits`)."""
    t0 = time.time()
    store.require_writable()
    check_name(name)
    if mode not in MODES:
        raise InputError(f"mode must be error or overwrite, got {mode!r}", params=("mode",))
    if top_k is not None and top_k < 1:
        raise InputError("top_k must be >= 1", params=("top_k",))
    if calibration_models is not None and (isinstance(calibration_models, bool) or not isinstance(calibration_models, int)
                                           or calibration_models < 2):
        raise InputError(f"calibration_models must be an integer >= 2 (two numbers per target are fitted) or None "
                         f"for every fit model, got {calibration_models!r}", params=("calibration_models",))
    alpha = check_alpha(alpha)
    dev = resolve_device(device)
    store = store.pinned()
    store.require_models(experiment, alpha, "fit")
    src = open_scores(store, path, layout, targets, trak_experiment)
    _require_margins(store, src, experiment, alpha)
    record = {"source": source, "file": src.path.name, "kind": src.kind, "digest": file_digest(src.file),
              "layout": src.layout, "targets": [int(src.target_ids[0]), int(src.target_ids[-1]), int(src.target_ids.size)],
              "top_k": top_k, "params": {str(k): str(v) for k, v in (params or {}).items()}}
    calib = _calibration_sample(store, experiment, alpha, calibration_models)
    if calib is not None:    # recorded only when it samples: ingests that read every fit model keep their identity
        record["calibration_models"] = int(calib.size)
    claim = Claim(name, experiment, alpha, identity(name, experiment, alpha, record, 0, 0), unique_name=mode == "error")
    earlier = existing(store, claim)
    if earlier is not None:
        return FitResult.from_row(store, earlier)
    units = units_of(store.snapshot(), [r["fit_id"] for r in named(store, claim)]) if mode == "overwrite" else []
    job = _Job(store, src, experiment, alpha, top_k, dev, progress, name, record, t0, calib)
    try:
        with lease.held(store.root, "ingest scores"), private_file(store.root, "preds", ".parquet") as job.pred_path:
            fit_id = commit(store, job.tables, claim, store.snapshot(),
                            {"experiment": experiment, "alpha": alpha, "estimator": name, "scores": record["digest"]},
                            remove=units)
    except SameFit as e:
        from ..store import Store
        return FitResult.from_row(store, require_fit(Store.open(store.root), e.fit_id))
    return FitResult(fit_id, name, int(src.target_ids.size), job.n_fit, job.n_val, 0, 0.0, job.wall, str(dev), [],
                     n_clamped=job.clamped, kind=source, store=store,
                     models_used=int(params["models_trained"]) if params and "models_trained" in params else None)


def _calibration_sample(store, experiment: str, alpha: float, limit: int | None) -> np.ndarray | None:
    """int64 [limit]: the fit models the calibration reads when there are more than `limit` (the
    first `limit` of `fit.stats.model_order(ids, 0)`, the order `fit --models` takes), else None."""
    if limit is None:
        return None
    ids = store.models(experiment, alpha, "fit", ["model_id"])["model_id"].to_numpy()
    if ids.size <= limit:
        return None
    from ..fit.stats import model_order
    return np.sort(model_order(ids, 0)[:limit])


def _require_margins(store, src: Scores, experiment: str, alpha: float) -> None:
    """Every target of the scores has margins on every fit, val and eval model (else an
    InputError naming the file, and for triples the first row of that target)."""
    gone = store.missing_targets(experiment, alpha, ["fit", "val", "eval"], src.target_ids)
    if not gone.size:
        return
    t = int(gone[0])
    where = f"{src.path}: data row {src.first_row(t) + 1}: " if src.triples is not None else f"{src.path}: "
    raise InputError(f"{where}target {t} has no recorded margins on the models of {experiment!r} at alpha "
                     f"{alpha} ({gone.size} such target(s)), so its scores cannot be calibrated or evaluated; "
                     f"give scores for targets the models recorded (--targets)", params=("targets",))


class _Job:
    """One pass of a score matrix through the store, by blocks of targets: calibration sums on
    the fit (and val) models, calibrated weights streamed out, eval predictions set aside in a
    private file, then the fits rows and the fit_runs row."""

    def __init__(self, store, src: Scores, experiment, alpha, top_k, dev, progress, name, record, t0, calib=None):
        self.store, self.src, self.experiment, self.alpha = store, src, experiment, alpha
        self.calib = calib          # int64 [k]: the fit models of the calibration (None: all)
        self.top_k, self.dev, self.progress, self.name, self.record, self.t0 = top_k, dev, progress, name, record, t0
        d = store.d
        self.step = int(max(1, min(src.target_ids.size, BLOCK_BYTES // (4 * max(d, 1)))))
        self.rows = int(max(64, min(4096, (32 << 20) // (4 * max(d, 1)))))
        roles = store.models(experiment, alpha, ["fit", "val", "eval"], ["model_id", "role"])
        role = np.asarray(roles["role"].to_pylist())
        self.n_fit, self.n_val, self.n_eval = (int((role == r).sum()) for r in ("fit", "val", "eval"))
        if calib is not None:
            self.n_fit = int(calib.size)          # the fit models the calibration read

    def tables(self, fit_id: int) -> dict:
        self.fit_id, self.fits, self._const = fit_id, [], None
        return {"weights": self._weights, "fits": self._fits, "eval_predictions": self._predictions,
                "fit_runs": self._fit_runs}

    def _sums(self, block_t, S):
        """Per group ('fit': the calibration's models, 'val'): n and the float64 sums Σs, Σy, Σs²,
        Σsy, Σy² [nb] of the raw predictions s = x·S and the margins y."""
        nb = block_t.size
        acc = {g: np.zeros((6, nb)) for g in ("fit", "val")}
        St = torch.as_tensor(S).to(self.dev).T                           # [d, nb] (a transposed view)
        for ch in self.store.iter_chunks(self.experiment, self.alpha, role=["fit", "val"], targets=block_t,
                                         max_rows=self.rows):
            roles, masks, y = ch["roles"], ch["masks"], ch["margins"]
            if self.calib is not None:          # the fit models outside the sample are not read further
                keep = (roles != "fit") | np.isin(ch["model_ids"], self.calib)
                if not keep.any():
                    continue
                if not keep.all():
                    roles, masks, y = roles[keep], masks[keep], y[keep]
            s = (torch.as_tensor(masks).to(self.dev, torch.float32) @ St).double().cpu().numpy()
            y = y.astype(np.float64)
            for g in ("fit", "val"):
                k = roles == g
                if k.any():
                    sg, yg = s[k], y[k]
                    acc[g] += np.stack([np.full(nb, k.sum()), sg.sum(0), yg.sum(0), (sg * sg).sum(0),
                                        (sg * yg).sum(0), (yg * yg).sum(0)])
        return acc

    @staticmethod
    def _calibrate(a):
        n, ss, sy, sss, ssy, syy = a
        n = np.maximum(n, 1)
        ms, my = ss / n, sy / n
        var_s = np.maximum(sss / n - ms * ms, 0)
        var_y = np.maximum(syy / n - my * my, 0)
        cov = ssy / n - ms * my
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(var_s > 0, cov / var_s, 0.0)
            floor = np.where(var_s > 0, MIN_SCALE * np.sqrt(var_y / var_s), 0.0)
        scale = np.maximum(slope, floor)
        clamped = (var_s > 0) & (slope < floor)
        bias = my - scale * ms
        mse = np.maximum(var_y - 2 * scale * cov + scale * scale * var_s, 0)
        return scale, bias, mse, clamped

    @staticmethod
    def _mse(a, scale, bias):
        n, ss, sy, sss, ssy, syy = a
        with np.errstate(divide="ignore", invalid="ignore"):
            v = (syy - 2 * bias * sy - 2 * scale * ssy + n * bias * bias + 2 * bias * scale * ss
                 + scale * scale * sss) / n
        return np.where(n > 0, np.maximum(v, 0), np.nan)

    def _weights(self):
        src, d = self.src, self.store.d
        n = src.target_ids.size
        self.clamped = 0
        bar = progress_bar(total=n, desc="ingest scores", unit="target", enabled=self.progress)
        writer = pq.ParquetWriter(self.pred_path, pa.schema([("model_id", pa.int64()), ("target_id", pa.int32()),
                                                             ("predicted", pa.float32())]))
        try:
            for lo in range(0, n, self.step):
                pos = np.arange(lo, min(n, lo + self.step))
                block_t = src.target_ids[pos]
                S = src.block(pos)                                    # float32 [nb, d]
                bad = ~np.isfinite(S)
                if bad.any():
                    j, i = np.argwhere(bad)[0]
                    raise InputError(f"{src.where(int(pos[j]), int(i))}: score {S[j, i]} is not finite; "
                                     f"{int(bad.sum())} such value(s) in this block. Recompute or drop them")
                if self.top_k is not None and self.top_k < d:
                    keep = np.argpartition(-np.abs(S), self.top_k - 1, axis=1)[:, :self.top_k]
                    mask = np.zeros_like(S, dtype=bool)
                    np.put_along_axis(mask, keep, True, axis=1)
                    S = np.where(mask, S, np.float32(0))
                acc = self._sums(block_t, S)
                scale, bias, mse, clamped = self._calibrate(acc["fit"])
                self.clamped += int(clamped.sum())
                S *= scale[:, None].astype(np.float32)                 # the weights [nb, d], in place
                W = S
                val = self._mse(acc["val"], scale, bias) if self.n_val else np.full(pos.size, np.nan)
                nnz = np.count_nonzero(W, axis=1)
                self.fits.append((block_t, bias, mse, val, nnz, scale, acc["fit"][0]))
                self._predict(writer, block_t, W, bias)
                yield from self._weight_rows(block_t, W)
                bar.update(pos.size)
        finally:
            writer.close()
            bar.close()

    def _weight_rows(self, block_t, W):
        """The non-zero weights of a block W [nb, d] (target-major) as tables of rows by (target,
        train id), WEIGHT_TABLE_ROWS weights at a time (the row explosion to five columns stays
        bounded whatever the block): a dense row is a view of W; train ids by a boolean mask or
        a tiled range; target ids by repeating each target's count; fit_id and lam slices of
        constant arrays made once."""
        d = W.shape[1]
        per = max(1, WEIGHT_TABLE_ROWS // max(d, 1))
        if self._const is None or self._const[0].size < per * d:
            n = per * d
            self._const = (np.full(n, self.fit_id, np.int64), np.zeros(n), np.tile(np.arange(d, dtype=np.int32), per))
        fid, lam, tiled = self._const
        ids = tiled[:d]
        for lo in range(0, block_t.size, per):
            Wk = W[lo:lo + per]                                          # [k, d], contiguous rows
            nz = Wk != 0
            if nz.all():
                w, ti = Wk.ravel(), tiled[:Wk.size]
                tj = np.repeat(block_t[lo:lo + per], d)
            else:
                w, ti = Wk[nz], np.broadcast_to(ids, Wk.shape)[nz]
                tj = np.repeat(block_t[lo:lo + per], nz.sum(1))
            yield pa.table({"fit_id": fid[:w.size], "target_id": tj, "lam": lam[:w.size], "train_id": ti, "weight": w})

    def _predict(self, writer, block_t, W, bias):
        if not self.n_eval:
            return
        Wt = torch.as_tensor(W).to(self.dev).T                           # [d, nb] (a transposed view)
        b = torch.as_tensor(bias.astype(np.float32)).to(self.dev)
        for ch in self.store.iter_chunks(self.experiment, self.alpha, role="eval", with_margins=False,
                                         max_rows=self.rows):
            Pm = (torch.as_tensor(ch["masks"]).to(self.dev, torch.float32) @ Wt + b).cpu().numpy()
            ids = ch["model_ids"]
            writer.write_table(pa.table({"model_id": np.repeat(ids, block_t.size),
                                         "target_id": np.tile(block_t, ids.size), "predicted": Pm.ravel()}))

    def _fits(self) -> pa.Table:
        cols = [np.concatenate(x) for x in zip(*self.fits)]
        tid, bias, mse, val, nnz, scale, nmod = cols
        n = tid.size
        return pa.table({"fit_id": np.full(n, self.fit_id, np.int64), "experiment": [self.experiment] * n,
                         "alpha": np.full(n, self.alpha), "estimator": [self.name] * n, "target_id": tid.astype(np.int32),
                         "lam": np.zeros(n), "bias": bias, "train_mse": mse,
                         "val_mse": pa.array(val, pa.float64(), from_pandas=True), "nnz": nnz.astype(np.int32),
                         "selected": np.ones(n, bool), "n_models": nmod.astype(np.int64),
                         "rel_gap": pa.nulls(n, pa.float64()), "n_iter": pa.nulls(n, pa.int32()),
                         "converged": np.ones(n, bool), "scale": scale})

    def _predictions(self):
        pf = pq.ParquetFile(self.pred_path)
        for b in pf.iter_batches(batch_size=1 << 20):
            t = pa.Table.from_batches([b])
            yield t.add_column(0, "fit_id", pa.array(np.full(t.num_rows, self.fit_id, np.int64)))

    def _fit_runs(self) -> pa.Table:
        self.wall = time.time() - self.t0
        return fit_runs_row(self.fit_id, self.experiment, self.alpha, self.name, {
            "n_fit": self.n_fit, "n_val": self.n_val, "val_source": "role" if self.n_val else "none",
            "n_targets": int(self.src.target_ids.size), "n_lambdas": 1, "lambda_min_ratio": None, "tol": None,
            "max_iter": None, "dtype": "float32", "device": str(self.dev), "wall_time_s": self.wall,
            "max_rel_gap": None, "n_not_converged": 0, "params": dict(self.record, n_clamped=self.clamped)})
