"""Writing query results: table | csv | json | jsonl | parquet, to stdout or a file."""
from __future__ import annotations

import base64
import csv
import datetime as _dt
import decimal
import io
import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import InputError

FORMATS = ("table", "csv", "json", "jsonl", "parquet")


def _jsonable(v):
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if isinstance(v, (_dt.date, _dt.datetime, _dt.time)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _text_safe(t: pa.Table) -> pa.Table:
    """Binary columns → base64 text, so CSV and tables print them."""
    cols = []
    for f, c in zip(t.schema, t.columns):
        if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type) or pa.types.is_fixed_size_binary(f.type):
            c = pa.array([None if v is None else base64.b64encode(v).decode() for v in c.to_pylist()],
                         pa.string())
        cols.append(c)
    return pa.table(cols, names=t.column_names)


def render_table(t: pa.Table, max_rows: int = 200, max_width: int = 40) -> str:
    """A plain aligned text table (the first `max_rows` rows)."""
    t = _text_safe(t)
    rows = t.slice(0, max_rows).to_pylist()
    names = t.column_names

    def fmt(v):
        if v is None:
            return ""
        if isinstance(v, float):
            s = f"{v:.6g}"
        else:
            s = str(v)
        return s if len(s) <= max_width else s[:max_width - 1] + "…"
    cells = [[fmt(r[n]) for n in names] for r in rows]
    widths = [max([len(n)] + [len(c[i]) for c in cells]) for i, n in enumerate(names)]
    line = lambda xs: "  ".join(x.ljust(w) for x, w in zip(xs, widths)).rstrip()  # noqa: E731
    out = [line(names), line(["-" * w for w in widths])] + [line(c) for c in cells]
    if t.num_rows > max_rows:
        out.append(f"… {t.num_rows - max_rows} more rows (use --format csv or -o FILE for all)")
    return "\n".join(out) + "\n"


def write_result(t: pa.Table, fmt: str, out: str | None) -> None:
    """Write `t` as `fmt` to the file `out` (stdout when None or '-')."""
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    to_stdout = out in (None, "-")
    if fmt == "parquet":
        if to_stdout:
            raise InputError("--format parquet needs -o FILE (Parquet is binary)")
        pq.write_table(t, out, compression="zstd")
        return
    if fmt == "table":
        text = render_table(t, max_rows=t.num_rows if not to_stdout else 200)
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(t.column_names)
        for batch in _text_safe(t).to_batches():
            w.writerows(zip(*(c.to_pylist() for c in batch.columns)))
        text = buf.getvalue()
    elif fmt == "json":
        text = json.dumps([_jsonable(r) for r in t.to_pylist()], indent=1) + "\n"
    else:
        text = "".join(json.dumps(_jsonable(r)) + "\n" for r in t.to_pylist())
    if to_stdout:
        sys.stdout.write(text)
    else:
        Path(out).write_text(text)
