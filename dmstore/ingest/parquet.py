"""Parquet or Arrow IPC files that follow `schemas/`: model tables (with a `mask` column) and
margin tables (model_id, example_id, margin), read chunk by chunk through DuckDB."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..engine.query import run
from ..errors import InputError
from ..storage.parquet import fixed_width_bytes
from ..store import batch as B
from ..store import validate as V
from ..store.batch import ModelBatch
from ..store.writer import IngestReport


def _mask_column_to_packed(col: pa.ChunkedArray, d: int, where: str) -> np.ndarray:
    """BLOB (np.packbits) or BIT-as-text ('0101…') masks → uint8 [m, ceil(d/8)]; packed bytes
    are decoded without per-row Python (`fixed_width_bytes`), text row by row."""
    width = (d + 7) // 8
    fast = fixed_width_bytes(col, width)
    if fast is not None:
        return fast
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


_NUMERIC = {"model_id": "integer", "example_id": "integer", "alpha": "number", "margin": "number",
            "seed": "integer", "mask_id": "integer", "train_accuracy": "number", "test_accuracy": "number"}


def _check_types(f: Path, schema: pa.Schema) -> None:
    """Numbers stored as text (alpha "0.5", margins as strings) are refused, never cast."""
    for name, kind in _NUMERIC.items():
        if name not in schema.names:
            continue
        t = schema.field(name).type
        ok = pa.types.is_integer(t) if kind == "integer" else (pa.types.is_integer(t) or pa.types.is_floating(t))
        if not (ok or pa.types.is_null(t)):
            raise InputError(f"{f}: column {name} has type {t}, not {'an integer' if kind == 'integer' else 'a number'}; "
                             f"write it as a numeric column (text is never cast)")


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


def ingest_parquet(store, files, mode: str = "append") -> IngestReport:
    """Ingest Parquet or Arrow IPC files that follow `schemas/`: files with a `mask` column are
    model tables, files with a `margin` column are margin tables (model_id, example_id, margin)."""
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


def _ingest_parquet_files(store, given, files, mode) -> IngestReport:
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
        schema = pq.read_schema(f)
        _check_types(f, schema)
        names = schema.names
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
        first = run(con, "ingest_first_targets", model=int(ids[0])).fetchall()[0][0]
        targets = np.asarray(first or [], np.int32)
        if not targets.size:
            raise InputError(f"model {int(ids[0])} has no rows in the margins file(s)")
        step = max(1, B.MAX_CELLS // targets.size)

        def make(sel=sel, ids=ids, targets=targets, step=step, exp_=exp_, alpha=alpha):
            for lo in range(0, ids.size, step):
                chunk = sel.slice(lo, step)
                cid = ids[lo:lo + step]
                y = run(con, "ingest_margins_chunk", lo=int(cid[0]), hi=int(cid[-1])).fetchnumpy()
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
                mk = run(con, "ingest_masks_chunk", lo=int(cid[0]), hi=int(cid[-1])).to_arrow_table()
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
        _check_types(f, pq.read_schema(f))
        bad = next(iter(run(con, "ingest_null_margin", file=str(f)).fetchall()), None)
        if bad is not None:
            col = ["model_id", "example_id", "margin"][[v is None for v in bad].index(True)]
            raise InputError(f"{f}: {col} is empty (NULL) in the row of model {bad[0]}, example {bad[1]}; "
                             f"every margin must be a number — fill it or drop the model")
        orphan = next(iter(run(con, "ingest_orphan_margins", file=str(f)).fetchall()), None)
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
