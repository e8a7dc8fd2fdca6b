"""Writing query results as they stream out of DuckDB: table | csv | json | jsonl | parquet, to
stdout or a file. Nothing holds the whole result: Arrow record batches are written as they come,
and the table preview fetches only the rows it shows.

Binary columns (masks: BLOB, or BIT in views) are written as base64 text in csv/json/jsonl and
tables, and as packed bytes (BLOB) in Parquet, so an exported file re-ingests."""
from __future__ import annotations

import base64
import csv
import io
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from ..errors import InputError, QueryError
from ..storage.parquet import write_options

FORMATS = ("table", "csv", "json", "jsonl", "parquet")
BATCH_ROWS = 65_536


def _batches(reader):
    """The record batches of `reader`; a failure to read one (a corrupted page, a file gone)
    is a QueryError that says so, never mistaken for a failure to write the output."""
    it = iter(reader)
    while True:
        try:
            b = next(it)
        except StopIteration:
            return
        except (OSError, ValueError, RuntimeError) as e:   # pyarrow's wrappers of DuckDB errors
            raise QueryError(f"reading the query's rows failed: {str(e).strip()}; a file it reads may be "
                             f"damaged (restore the store, or that file, from a copy)") from None
        yield b


def _is_binary(t) -> bool:
    return str(t) in ("BLOB", "BIT")


def encode_binary(rel: duckdb.DuckDBPyRelation, text: bool) -> duckdb.DuckDBPyRelation:
    """BIT columns → packed BLOB; with `text`, every BLOB → base64 text."""
    if not any(_is_binary(t) for t in rel.types):
        return rel
    cols = []
    for c, t in zip(rel.columns, rel.types):
        q = '"' + c.replace('"', '""') + '"'
        if _is_binary(t):
            blob = f"{q}::BLOB" if str(t) == "BIT" else q
            cols.append(f"base64({blob}) AS {q}" if text else f"{blob} AS {q}")
        else:
            cols.append(q)
    return rel.project(", ".join(cols))


def _text_safe(t: pa.Table) -> pa.Table:
    """Binary columns → base64 text (for the table preview)."""
    cols = []
    for f, c in zip(t.schema, t.columns):
        if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type) or pa.types.is_fixed_size_binary(f.type):
            c = pa.array([None if v is None else base64.b64encode(v).decode() for v in c.to_pylist()],
                         pa.string())
        cols.append(c)
    return pa.table(cols, names=t.column_names)


def render_table(t: pa.Table, more: bool = False, max_width: int | dict = 40) -> str:
    """A plain aligned text table of `t`; `more` adds a line saying rows were left out. Cells
    longer than `max_width` characters are cut with '…' (a dict: per column, default 40)."""
    t = _text_safe(t)
    rows = t.to_pylist()
    names = t.column_names

    def fmt(v, n):
        if v is None:
            return ""
        s = f"{v:.6g}" if isinstance(v, float) else str(v)
        w = max_width.get(n, 40) if isinstance(max_width, dict) else max_width
        return s if len(s) <= w else s[:w - 1] + "…"
    cells = [[fmt(r[n], n) for n in names] for r in rows]
    widths = [max([len(n)] + [len(c[i]) for c in cells]) for i, n in enumerate(names)]
    line = lambda xs: "  ".join(x.ljust(w) for x, w in zip(xs, widths)).rstrip()  # noqa: E731
    out = [line(names), line(["-" * w for w in widths])] + [line(c) for c in cells]
    if more:
        out.append(f"… more rows after these {len(rows)} (use --csv, --nl or -o FILE for all of them)")
    return "\n".join(out) + "\n"


@contextmanager
def _sink(out):
    """A binary file object: stdout when `out` is None or '-', else the file (created)."""
    if out in (None, "-"):
        stream = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
        if stream is None:
            raise InputError("stdout takes no binary output here; give -o FILE")
        yield stream
        stream.flush()
    else:
        with open(out, "wb") as fh:
            yield fh


def _lines(col: pa.Array, sep: str) -> memoryview:
    """The strings of `col` (no nulls), each followed by `sep`, as one contiguous buffer."""
    joined = pc.binary_join_element_wise(col, pa.scalar(""), pa.scalar(sep))
    if isinstance(joined, pa.ChunkedArray):
        joined = joined.combine_chunks()
    offsets = joined.buffers()[1]
    off = np.frombuffer(offsets, np.int32, count=len(joined) + 1, offset=joined.offset * 4)
    return memoryview(joined.buffers()[2])[off[0]:off[-1]]


def write_relation(rel: duckdb.DuckDBPyRelation, fmt: str, out=None, max_rows: int = 200) -> int | None:
    """Stream `rel` as `fmt` to `out` (a path; stdout when None or '-'). Returns the rows
    written (None for the table preview, which fetches `max_rows` + 1 rows only)."""
    if fmt not in FORMATS:
        raise InputError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}", params=("fmt",))
    if fmt == "table":
        to_stdout = out in (None, "-")
        t = (rel.limit(max_rows + 1) if to_stdout else rel).to_arrow_table()
        more = to_stdout and t.num_rows > max_rows
        text = render_table(t.slice(0, max_rows) if more else t, more)
        with _sink(out) as fh:
            fh.write(text.encode())
        return None
    if fmt in ("json", "jsonl"):
        rel = encode_binary(rel, text=True).query("_q", "SELECT to_json(_q) AS j FROM _q")
    else:
        rel = encode_binary(rel, text=(fmt == "csv"))
    reader = rel.to_arrow_reader(BATCH_ROWS)
    n = 0
    with _sink(out) as fh:
        if fmt == "parquet":
            with pq.ParquetWriter(fh, reader.schema, **write_options()) as w:
                for b in _batches(reader):
                    w.write_batch(b)
                    n += b.num_rows
        elif fmt == "csv":   # quoted only where needed, as the csv module does
            text = io.TextIOWrapper(fh, encoding="utf-8", newline="", write_through=True)
            w = csv.writer(text, lineterminator="\n")
            w.writerow(reader.schema.names)
            # numbers and booleans never need quotes: Arrow's writer formats them far faster
            fast = all(pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_boolean(f.type)
                       for f in reader.schema)
            opts = pacsv.WriteOptions(include_header=False)
            for b in _batches(reader):
                if fast:
                    pacsv.write_csv(b, fh, write_options=opts)
                else:
                    w.writerows(zip(*(c.to_pylist() for c in b.columns)))
                n += b.num_rows
            text.detach()
        else:
            sep = "\n" if fmt == "jsonl" else ",\n"
            if fmt == "json":
                fh.write(b"[\n")
            for b in _batches(reader):
                if not b.num_rows:
                    continue
                buf = _lines(b.column(0), sep)
                if fmt == "json":
                    if n:
                        fh.write(b",\n")
                    buf = buf[:-2]
                fh.write(buf)
                n += b.num_rows
            if fmt == "json":
                fh.write(b"\n]\n")
    return n


def write_partitioned(rel: duckdb.DuckDBPyRelation, out: Path, partition_by: list[str],
                      overwrite: bool = False) -> int:
    """Stream `rel` into a Hive-partitioned Parquet directory `out` (col=value/…). A non-empty
    `out` is refused unless `overwrite`, which replaces it whole."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise InputError(f"{out}: exists and is not empty; a partitioned export into it would mix "
                             f"old and new partition files. Choose a new directory or pass overwrite "
                             f"to replace it", params=("overwrite",))
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    missing = [c for c in partition_by if c not in rel.columns]
    if missing:
        raise InputError(f"partition_by {missing[0]}: no such column; columns are {', '.join(rel.columns)}",
                         params=("partition_by",))
    reader = encode_binary(rel, text=False).to_arrow_reader(BATCH_ROWS)
    n = 0

    def counted():
        nonlocal n
        for b in _batches(reader):
            n += b.num_rows
            yield b
    schema = reader.schema
    part = pads.partitioning(pa.schema([schema.field(c) for c in partition_by]), flavor="hive")
    pads.write_dataset(pa.RecordBatchReader.from_batches(schema, counted()), out, format="parquet",
                       partitioning=part, existing_data_behavior="error",
                       file_options=pads.ParquetFileFormat().make_write_options(compression="zstd"))
    # (the dataset writer takes only a codec: statistics and levels are pyarrow's defaults)
    return n
