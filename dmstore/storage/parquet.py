"""How the store writes and decodes Parquet: one set of write options per table kind, the
target-major margins layout, the key-value metadata of margins files, and Arrow helpers.

Margins are float32 that often came from float16: splitting the bytes into streams lets zstd
drop the all-zero low mantissa bytes. A target-major margins file is sorted by (example_id,
model row) with row groups of whole targets, so the min/max statistics of example_id let a
reader of one target skip every other group.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .schema import arrow_schema

TARGETS_KEY = "dmstore.targets"   # margins files: the batch's sorted target ids, as ranges
LAYOUT_KEY = "dmstore.layout"     # "target": sorted by (example_id, model row); absent: model-major
ROW_GROUP_ROWS = 1 << 20          # rows per row group of every written file (target-major: below)
# rows per row group of a target-major margins file (whole targets). A point query pays per row
# group (footer statistics) more than per row: on 1.2 B margins in 38 files, 1 M-row groups
# answer one target in 0.095 s vs 0.24 s with 128 k-row groups, and the file is 7 % smaller.
TARGET_GROUP_ROWS = 1 << 20
# rows per row group of a train-major weights copy (sorted by train_id): one training example's
# row is read from the groups its train_id's statistics admit, so smaller groups read less
BY_TRAIN_GROUP_ROWS = 1 << 17

_BY_KIND = {
    "margins": dict(use_dictionary=["example_id", "margin"], use_byte_stream_split=["margin"],
                    compression_level=1),
    # train ids ascend within a target: delta-encoded they cost ~2 bits (3.7 vs 6.1 B/row dense)
    "weights": dict(use_dictionary=["fit_id", "target_id", "lam"],
                    column_encoding={"train_id": "DELTA_BINARY_PACKED", "weight": "BYTE_STREAM_SPLIT"}),
    # sorted by (train_id, target_id): train ids repeat (delta 0) and target ids ascend in runs
    "weights_by_train": dict(use_dictionary=["fit_id", "lam"],
                             column_encoding={"target_id": "DELTA_BINARY_PACKED", "train_id": "DELTA_BINARY_PACKED",
                                              "weight": "BYTE_STREAM_SPLIT"}),
}


def write_options(kind: str | None = None) -> dict:
    """Keyword arguments of pyarrow's Parquet writers for a file of table `kind` (None: an
    export of query results)."""
    return {"compression": "zstd", "compression_level": 3, "write_statistics": True, **_BY_KIND.get(kind, {})}


def _with_metadata(table_or_schema, metadata: dict | None):
    if not metadata:
        return table_or_schema
    meta = {k: str(v) for k, v in metadata.items()}
    if isinstance(table_or_schema, pa.Schema):
        return table_or_schema.with_metadata(meta)
    return table_or_schema.replace_schema_metadata(meta)


def write_parquet(table: pa.Table, path: Path, kind: str, metadata: dict | None = None) -> None:
    """Write `table` (cast to schema `kind`) to `path` with the store's settings; `metadata`
    (str → str) goes into the file's key-value metadata."""
    schema = arrow_schema(kind)
    table = fill_nullable(table, schema)
    extra = [table.schema.field(c) for c in table.column_names if c not in schema.names]
    if extra:  # user columns (examples only) follow the contract's columns
        schema = pa.schema(list(schema) + extra)
        table = table.select(schema.names)
    table = table.cast(schema) if not table.schema.equals(schema) else table
    pq.write_table(_with_metadata(table, metadata), path, row_group_size=ROW_GROUP_ROWS, **write_options(kind))


def fill_nullable(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with every nullable column of `schema` it lacks added as nulls (a column the
    format gained later, such as fits.scale)."""
    for f in schema:
        if f.name not in table.column_names and f.nullable:
            table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    return table


def write_margins_target_major(path: Path, model_ids: np.ndarray, target_ids: np.ndarray, Y: np.ndarray,
                               metadata: dict) -> None:
    """Margins Y float32 [m, n] of models `model_ids` on `target_ids`, target-major (see the
    module docstring); model_id is delta-encoded (constant steps cost no bits), example_id runs
    cost a dictionary index per run."""
    m, n = Y.shape
    table = pa.table({"model_id": np.tile(np.asarray(model_ids, np.int64), n),
                      "example_id": np.repeat(np.asarray(target_ids, np.int32), m),
                      "margin": np.ascontiguousarray(Y.T, dtype=np.float32).ravel()})
    table = _with_metadata(table.cast(arrow_schema("margins")), metadata)
    rows = max(1, TARGET_GROUP_ROWS // max(m, 1)) * max(m, 1)
    pq.write_table(table, path, row_group_size=rows, column_encoding={"model_id": "DELTA_BINARY_PACKED"},
                   **write_options("margins"))


def parquet_writer(path: Path, kind: str, metadata: dict | None = None) -> pq.ParquetWriter:
    """A streaming writer with the same schema and settings as `write_parquet` (for compaction)."""
    return pq.ParquetWriter(path, _with_metadata(arrow_schema(kind), metadata), **write_options(kind))


def file_metadata(path: Path) -> dict[str, str]:
    """The key-value metadata of a Parquet file, as text."""
    meta = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items()}


def encode_ranges(ids: np.ndarray) -> str:
    """Sorted int ids → compact text 'a-b,c,d-e' (inclusive ranges)."""
    if ids.size == 0:
        return ""
    breaks = np.flatnonzero(np.diff(ids) != 1)
    starts = np.concatenate([[ids[0]], ids[breaks + 1]])
    ends = np.concatenate([ids[breaks], [ids[-1]]])
    return ",".join(f"{s}" if s == e else f"{s}-{e}" for s, e in zip(starts.tolist(), ends.tolist()))


def decode_ranges(text: str) -> np.ndarray:
    """The inverse of `encode_ranges`: int32 ids, ascending."""
    if not text:
        return np.zeros(0, np.int32)
    parts = []
    for tok in text.split(","):
        a, _, b = tok.partition("-")
        parts.append(np.arange(int(a), int(b or a) + 1, dtype=np.int32))
    return np.concatenate(parts)


def margins_targets(path: Path) -> np.ndarray:
    """int32 [n]: the target ids of a margins file (from its metadata), ascending."""
    return decode_ranges(file_metadata(path).get(TARGETS_KEY, ""))


def is_target_major(path_or_meta) -> bool:
    meta = path_or_meta if isinstance(path_or_meta, dict) else file_metadata(path_or_meta)
    return meta.get(LAYOUT_KEY) == "target"


def fixed_width_bytes(col: pa.ChunkedArray | pa.Array, width: int) -> np.ndarray | None:
    """A binary column of values of `width` bytes each → uint8 [len, width], without per-row
    Python; None when some value has another length (the caller names the row)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks else pa.array([], pa.binary())
    if len(col) == 0:
        return np.zeros((0, width), np.uint8)
    if not (pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type) or
            pa.types.is_fixed_size_binary(col.type)):
        return None
    if col.null_count:
        return None
    try:
        fixed = col.cast(pa.binary(width))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    data = np.frombuffer(fixed.buffers()[1], np.uint8)
    return data[fixed.offset * width:(fixed.offset + len(fixed)) * width].reshape(len(fixed), width)
