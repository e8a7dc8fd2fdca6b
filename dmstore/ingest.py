"""Ingestion paths beyond `Store.append`: the paper's published `.npy` release, the reference
implementation's training store, and Parquet files that follow `schemas/`.

Every path memory-maps or streams its input in chunks of models and reads it once: each chunk is
validated, then written privately; the store commits them only when every chunk was valid (see
`Store.ingest`).
"""
from __future__ import annotations

import re
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import validate as V
from .batch import ModelBatch
from .errors import InputError
from .store import IngestReport, Store

from .layout import MAX_CELLS  # noqa: E402  (margins per chunk: bounds memory)
from .progress import progress


def load_npy(path: Path, ndim: int | None = None) -> np.ndarray:
    """Memory-map a `.npy` file; a typed error names the file when it is not one or is cut short."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"{path}: not a readable .npy file ({e}); it may be truncated or of "
                         f"another format — re-copy or re-export it with np.save") from None
    if not isinstance(arr, np.ndarray):
        raise InputError(f"{path}: holds an .npz archive, not a single .npy array")
    if ndim is not None and arr.ndim != ndim:
        raise InputError(f"{path}: expected a {ndim}-D array, got shape {arr.shape}")
    return arr


class _ArraySource:
    """Chunks of (masks, margins on targets) read from memory-mapped arrays, validated per file."""

    def __init__(self, store: Store, experiment: str, alpha: float, masks_path: Path,
                 margin_files: list[tuple[Path, np.ndarray]], source: str, rows: np.ndarray,
                 roles: np.ndarray, accuracies: dict, desc: str):
        self.store, self.experiment, self.alpha = store, experiment, alpha
        self.masks_path = masks_path
        self.masks = load_npy(masks_path, 2)
        self.margins = [(p, load_npy(p, 2), t) for p, t in margin_files]
        self.source, self.rows, self.roles, self.acc, self.desc = source, rows, roles, accuracies, desc
        self.targets = np.concatenate([t for _, _, t in self.margins])
        if np.unique(self.targets).size != self.targets.size:
            raise InputError("two margin files map to the same targets; ingest one of them")
        m = self.masks.shape[0]
        for p, a, t in self.margins:
            if a.shape[0] != m:
                raise InputError(f"{p}: {a.shape[0]} rows but {masks_path.name} has {m}; every "
                                 f"file needs exactly one row per model (row i of each file is "
                                 f"model i) — {'extra rows would be dropped' if a.shape[0] > m else 'rows are missing'}")
            if a.shape[1] != t.size:
                raise InputError(f"{p}: {a.shape[1]} columns but the store has {t.size} examples "
                                 f"of that split; margins map to examples in example_id order")
        self.step = max(1, MAX_CELLS // max(1, self.targets.size))

    def __call__(self):
        rows = self.rows
        bar = progress(total=rows.size, desc=self.desc, unit="model", leave=False)
        for lo in range(0, rows.size, self.step):
            sel = rows[lo:lo + self.step]
            a, b = int(sel[0]), int(sel[-1]) + 1
            contiguous = b - a == sel.size
            take = (lambda arr: np.asarray(arr[a:b])) if contiguous else (lambda arr: np.asarray(arr[sel]))
            masks = V.masks_to_bool(take(self.masks), self.store.d, str(self.masks_path), a)
            parts = [V.margins_to_f32(take(arr), sel.size, t.size, str(p), a)
                     for p, arr, t in self.margins]
            batch = ModelBatch.from_arrays(
                experiment=self.experiment, alpha=self.alpha, masks=masks,
                margins=np.concatenate(parts, axis=1), target_ids=self.targets, d=self.store.d,
                n_examples=self.store.n_examples, where=str(self.masks_path), roles=self.roles[lo:lo + sel.size],
                source=self.source, source_rows=sel, row0=a,
                train_accuracy=None if "train" not in self.acc else np.asarray(self.acc["train"][sel]),
                test_accuracy=None if "test" not in self.acc else np.asarray(self.acc["test"][sel]))
            bar.update(sel.size)
            yield batch
        bar.close()


def _roles(m: int, eval_last: int, val_last: int) -> np.ndarray:
    if eval_last < 0 or val_last < 0 or eval_last + val_last > m:
        raise InputError(f"--eval-last {eval_last} and --val-last {val_last} must be >= 0 and "
                         f"together at most the {m} rows")
    roles = np.full(m, "fit", dtype=object)
    if val_last:
        roles[m - eval_last - val_last:m - eval_last] = "val"
    if eval_last:
        roles[m - eval_last:] = "eval"
    return roles


def release_files(directory: Path, alpha: float) -> dict:
    """Find `train_masks_<P>pct.npy`, `train_margins_<P>pct.npy`, `test_margins_<P>pct.npy`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: not a directory")
    pct = round(alpha * 100)
    found = {}
    for key in ("train_masks", "train_margins", "test_margins"):
        p = directory / f"{key}_{pct}pct.npy"
        if p.exists():
            found[key] = p
    if "train_masks" not in found:
        have = sorted(p.name for p in directory.glob("*.npy"))
        raise InputError(f"{directory}: no train_masks_{pct}pct.npy for alpha {alpha}; found "
                         f"{', '.join(have) or 'no .npy files'}")
    if len(found) == 1:
        raise InputError(f"{directory}: no train_margins_{pct}pct.npy or test_margins_{pct}pct.npy")
    return found


def ingest_release(store: Store, directory, alpha: float, experiment: str, eval_last: int = 0,
                   val_last: int = 0, mode: str = "append") -> IngestReport:
    """Ingest the paper's release format: bool masks [M, d], float16 margins [M, d] / [M, n_test]."""
    alpha = V.check_alpha(alpha)
    files = release_files(Path(directory), alpha)
    margin_files = []
    if "train_margins" in files:
        margin_files.append((files["train_margins"], store.example_ids("train")))
    if "test_margins" in files:
        margin_files.append((files["test_margins"], store.example_ids("test")))
    m = load_npy(files["train_masks"], 2).shape[0]
    src = _ArraySource(store, experiment, alpha, files["train_masks"], margin_files, "release",
                       np.arange(m), _roles(m, eval_last, val_last), {}, "ingest release")
    return store.ingest(src, mode)


def ingest_reference(store: Store, directory, alpha: float, experiment: str, eval_last: int = 0,
                     val_last: int = 0, mode: str = "append", margin_targets: dict | None = None
                     ) -> IngestReport:
    """Ingest a reference-implementation store: `masks.npy`, margin arrays, `_completed.npy`.
    Only completed rows are read. Each 2-D margin array maps to the train or test split by its
    width, or by `margin_targets[name]` ('train' | 'test') when widths are ambiguous."""
    alpha = V.check_alpha(alpha)
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: not a directory")
    for need in ("masks.npy", "_completed.npy"):
        if not (directory / need).exists():
            raise InputError(f"{directory}: missing {need}; a reference store holds masks.npy, "
                             f"margin arrays and _completed.npy")
    completed = np.asarray(load_npy(directory / "_completed.npy", 1))
    if completed.dtype != np.bool_:
        raise InputError(f"{directory / '_completed.npy'}: expected bool, got {completed.dtype}")
    rows = np.flatnonzero(completed)
    if not rows.size:
        raise InputError(f"{directory / '_completed.npy'}: no completed rows to ingest")
    d, n_test = store.d, store.example_ids("test").size
    margin_files, acc = [], {}
    margin_targets = dict(margin_targets or {})
    for p in sorted(directory.glob("*.npy")):
        if p.name.startswith("_") or p.name == "masks.npy":
            continue
        arr = load_npy(p)
        name = p.stem
        if arr.ndim == 1 and re.search(r"acc", name):
            acc["test" if "test" in name else "train"] = arr
            continue
        if arr.ndim != 2:
            continue
        split = margin_targets.pop(name, None)
        if split is None:
            if d == n_test and arr.shape[1] == d:
                raise InputError(f"{p}: {arr.shape[1]} columns fit both splits; say which with "
                                 f"--margins {name}=train or --margins {name}=test")
            split = "train" if arr.shape[1] == d else "test" if arr.shape[1] == n_test else None
        if split not in ("train", "test"):
            raise InputError(f"{p}: {arr.shape[1]} columns match neither the {d} train nor the "
                             f"{n_test} test examples; map it with --margins {name}=train|test")
        margin_files.append((p, store.example_ids(split)))
    if margin_targets:
        raise InputError(f"--margins names {', '.join(margin_targets)} but no such array is in {directory}")
    if not margin_files:
        raise InputError(f"{directory}: no margin arrays (2-D .npy files besides masks.npy)")
    m = load_npy(directory / "masks.npy", 2).shape[0]
    if completed.size != m:
        raise InputError(f"{directory / '_completed.npy'}: {completed.size} rows but masks.npy has {m}")
    roles_all = _roles(rows.size, eval_last, val_last)
    src = _ArraySource(store, experiment, alpha, directory / "masks.npy", margin_files,
                       "reference", rows, roles_all, acc, "ingest reference")
    return store.ingest(src, mode)


# ---------------------------------------------------------------------------------- parquet
def _mask_column_to_packed(col: pa.ChunkedArray, d: int, where: str) -> np.ndarray:
    """BLOB (np.packbits) or BIT-as-text ('0101…') masks → uint8 [m, ceil(d/8)]."""
    width = (d + 7) // 8
    values = col.to_pylist()
    out = np.zeros((len(values), width), np.uint8)
    for i, v in enumerate(values):
        if isinstance(v, (bytes, bytearray)):
            if len(v) != width:
                raise InputError(f"{where}: row {i}: mask has {len(v)} bytes; a packed mask of "
                                 f"d = {d} bits has {width}")
            out[i] = np.frombuffer(v, np.uint8)
        elif isinstance(v, str) and set(v) <= {"0", "1"}:
            if len(v) < d:
                raise InputError(f"{where}: row {i}: mask has {len(v)} bits but d = {d}")
            out[i] = np.packbits(np.frombuffer(v[:d].encode(), np.uint8) - 48)
        else:
            raise InputError(f"{where}: row {i}: mask must be packed bytes or a '0101…' bit string")
    return out


def _schema_of(f: Path) -> tuple[list[str], str]:
    """(column names, 'parquet' | 'arrow') of a Parquet or Arrow IPC (Feather v2) file."""
    try:
        return pq.read_schema(f).names, "parquet"
    except (pa.ArrowInvalid, OSError):
        pass
    try:
        with pa.memory_map(str(f)) as src:
            return pa.ipc.open_file(src).schema.names, "arrow"
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"{f}: neither a Parquet nor an Arrow IPC file ({e})") from None


def _arrow_to_parquet(f: Path, tmpdir: Path) -> Path:
    """Stream an Arrow IPC file into a temporary Parquet file, batch by batch (bounded memory)."""
    out = tmpdir / (f.stem + f"-{abs(hash(str(f)))}.parquet")
    with pa.memory_map(str(f)) as src:
        reader = pa.ipc.open_file(src)
        with pq.ParquetWriter(out, reader.schema) as w:
            for i in range(reader.num_record_batches):
                w.write_batch(reader.get_batch(i))
    return out


def ingest_parquet(store: Store, files, mode: str = "append") -> IngestReport:
    """Ingest Parquet or Arrow IPC files that follow `schemas/`: files with a `mask` column are
    model tables, files with a `margin` column are margin tables (model_id, example_id, margin)."""
    import shutil
    import tempfile
    files = [Path(f) for f in files]
    for f in files:
        if not f.exists():
            raise InputError(f"{f}: no such file")
    tmpdir = Path(tempfile.mkdtemp(prefix="dmstore-ingest-"))
    try:
        converted = []
        for f in files:
            kind = _schema_of(f)[1]
            converted.append(f if kind == "parquet" else _arrow_to_parquet(f, tmpdir))
        return _ingest_parquet_files(store, files, converted, mode)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _ingest_parquet_files(store: Store, given, files, mode) -> IngestReport:
    model_files, margin_files = [], []
    for orig, f in zip(given, files):
        names = pq.read_schema(f).names
        if "mask" in names:
            model_files.append(f)
        elif "margin" in names:
            margin_files.append(f)
        else:
            raise InputError(f"{orig}: neither a models file (with 'mask') nor a margins file "
                             f"(with 'margin'); see schemas/models.json and schemas/margins.json")
    if not model_files or not margin_files:
        raise InputError("give at least one models file and one margins file")
    need = ["model_id", "experiment", "alpha", "mask"]
    parts = []
    for f in model_files:  # everything but the masks, which are read chunk by chunk below
        names = pq.read_schema(f).names
        missing = [c for c in need if c not in names]
        if missing:
            raise InputError(f"{f}: missing column(s) {', '.join(missing)}")
        parts.append(pq.read_table(f, columns=[c for c in names if c != "mask"]))
    for f, t in zip(model_files, parts):
        for c in ("model_id", "experiment", "alpha"):
            if t[c].null_count:
                row = t[c].is_null().to_numpy(zero_copy_only=False).argmax()
                raise InputError(f"{f}: row {row}: {c} is empty; every model needs a model_id, an "
                                 f"experiment and an alpha")
    models = pa.concat_tables(parts, promote_options="permissive")
    V.no_duplicates(models["model_id"].to_numpy(), "model id", ", ".join(map(str, model_files)))
    con = duckdb.connect()
    con.execute("SET VARIABLE margin_files = ?", [[str(f) for f in margin_files]])
    con.execute("SET VARIABLE model_files = ?", [[str(f) for f in model_files]])
    _check_margin_files(con, margin_files, models["model_id"])
    report = IngestReport()
    groups = models.group_by(["experiment", "alpha"]).aggregate([]).to_pylist()
    opt = lambda t, c: None if c not in t.column_names else t[c]  # noqa: E731
    for g in groups:
        exp_, alpha = g["experiment"], g["alpha"]
        sel = models.filter(pc.and_(pc.equal(models["experiment"], exp_), pc.equal(models["alpha"], alpha)))
        sel = sel.take(pc.sort_indices(sel["model_id"]))
        ids = sel["model_id"].to_numpy()
        V.no_duplicates(ids, "model id", str(model_files[0]))
        first = con.execute(
            "SELECT list(DISTINCT example_id ORDER BY example_id) FROM "
            "read_parquet(getvariable('margin_files')) WHERE model_id = ?", [int(ids[0])]).fetchone()[0]
        targets = np.asarray(first or [], np.int32)
        if not targets.size:
            raise InputError(f"model {int(ids[0])} has no rows in the margins file(s)")
        step = max(1, MAX_CELLS // targets.size)

        def make(sel=sel, ids=ids, targets=targets, step=step, exp_=exp_, alpha=alpha):
            for lo in range(0, ids.size, step):
                chunk = sel.slice(lo, step)
                cid = ids[lo:lo + step]
                y = con.execute(
                    "SELECT model_id, example_id, margin FROM read_parquet(getvariable('margin_files')) "
                    "WHERE model_id BETWEEN ? AND ? ORDER BY model_id, example_id",
                    [int(cid[0]), int(cid[-1])]).fetchnumpy()
                keep = np.isin(y["model_id"], cid)
                mid, eid, val = y["model_id"][keep], y["example_id"][keep], y["margin"][keep]
                if mid.size != cid.size * targets.size:
                    raise InputError(f"{margin_files[0]}: models {int(cid[0])}..{int(cid[-1])} do not "
                                     f"all have margins on the same {targets.size} examples; every model "
                                     f"of one experiment and alpha needs the same targets")
                Y = np.asarray(val, np.float32).reshape(cid.size, targets.size)
                if not (np.array_equal(np.repeat(cid, targets.size), mid)
                        and np.array_equal(np.tile(targets, cid.size), eid)):
                    raise InputError(f"{margin_files[0]}: margins of models {int(cid[0])}..{int(cid[-1])} "
                                     f"are not one row per (model, target)")
                mk = con.sql(
                    "SELECT model_id, mask FROM read_parquet(getvariable('model_files')) "
                    "WHERE model_id BETWEEN $lo AND $hi ORDER BY model_id",
                    params={"lo": int(cid[0]), "hi": int(cid[-1])}).to_arrow_table()
                mk = mk.filter(pc.is_in(mk["model_id"], value_set=pa.array(cid)))
                packed = _mask_column_to_packed(mk["mask"], store.d, str(model_files[0]))
                masks = np.unpackbits(packed, axis=1, count=store.d).view(bool)
                b = ModelBatch.from_arrays(
                    experiment=exp_, alpha=alpha, masks=masks, margins=Y, target_ids=targets,
                    d=store.d, n_examples=store.n_examples, where=str(model_files[0]),
                    seeds=_ints_or_none(opt(chunk, "seed")), mask_ids=_ints_or_none(opt(chunk, "mask_id")),
                    roles=None if opt(chunk, "role") is None else chunk["role"].to_pylist(),
                    model_ids=cid, source="parquet", row0=lo,
                    train_accuracy=_floats_or_none(opt(chunk, "train_accuracy")),
                    test_accuracy=_floats_or_none(opt(chunk, "test_accuracy")))
                yield b
        r = store.ingest(make, mode)
        for k in ("added", "skipped", "replaced", "ignored", "batches"):
            setattr(report, k, getattr(report, k) + getattr(r, k))
        report.model_ids = np.concatenate([report.model_ids, r.model_ids])
    return report


def _check_margin_files(con, margin_files: list[Path], model_ids: pa.ChunkedArray) -> None:
    """Every margins file has model_id, example_id and margin, no empty value, and only model
    ids that a models file holds; the error names the file, the row's ids and the fix."""
    con.register("_dm_ids", pa.table({"model_id": model_ids.cast(pa.int64())}))
    for f in margin_files:
        names = pq.read_schema(f).names
        missing = [c for c in ("model_id", "example_id", "margin") if c not in names]
        if missing:
            raise InputError(f"{f}: missing column(s) {', '.join(missing)}; a margins file has "
                             f"model_id, example_id, margin (see schemas/margins.json)")
        bad = con.execute(
            "SELECT model_id, example_id, margin FROM read_parquet(?) "
            "WHERE model_id IS NULL OR example_id IS NULL OR margin IS NULL LIMIT 1", [str(f)]).fetchone()
        if bad is not None:
            col = ["model_id", "example_id", "margin"][[v is None for v in bad].index(True)]
            raise InputError(f"{f}: {col} is empty (NULL) in the row of model {bad[0]}, example {bad[1]}; "
                             f"every margin must be a number — fill it or drop the model")
        orphan = con.execute(
            "SELECT model_id, count(*) OVER () FROM (SELECT DISTINCT model_id FROM read_parquet(?)) "
            "ANTI JOIN _dm_ids USING (model_id) LIMIT 1", [str(f)]).fetchone()
        if orphan is not None:
            raise InputError(f"{f}: margins of model {orphan[0]} ({orphan[1]} model id(s) in all) have no "
                             f"row in the models file(s); give the models file that holds them, or drop "
                             f"those margins")
    con.unregister("_dm_ids")


def _ints_or_none(col):
    if col is None or col.null_count == len(col):
        return None
    if col.null_count:
        raise InputError("seed/mask_id columns must be all null or all set within one file")
    return col.to_numpy()


def _floats_or_none(col):
    if col is None or col.null_count == len(col):
        return None
    return np.asarray(col.to_pylist(), dtype=np.float64)
