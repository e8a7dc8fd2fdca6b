"""The manifest (`dmstore.json`: format version, d, creation) and the examples table it is made with."""
from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from . import __version__
from . import layout as L
from .errors import InputError, StoreError
from .schema import format_version
from .validate import read_table_file

REQUIRED = ("format_version", "train_size", "n_examples")


def new_manifest(d: int, n_examples: int) -> dict:
    return {
        "format": "dmstore",
        "format_version": format_version(),
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "created_by": f"dmstore {__version__}",
        "train_size": int(d),
        "n_examples": int(n_examples),
    }


def write_manifest(root: Path, manifest: dict) -> None:
    """Replace `dmstore.json` atomically (written under `.tmp/`, then renamed)."""
    tmp = root / L.TMP / f"manifest-{os.getpid()}.json"
    tmp.parent.mkdir(exist_ok=True)
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, root / L.MANIFEST)


def read_manifest(root: Path, check_version: bool = True) -> dict:
    """The parsed manifest; a typed error names what is wrong and how to fix it."""
    mpath = root / L.MANIFEST
    if not mpath.exists():
        raise StoreError(f"{root}: not a dmstore store (no {L.MANIFEST}); create one with "
                         f"`dmstore init {root} --train-size D`")
    try:
        manifest = json.loads(mpath.read_text())
        missing = [k for k in REQUIRED if k not in manifest]
        if missing:
            raise StoreError(f"{mpath}: the manifest lacks {', '.join(missing)}; the store is damaged "
                             f"(restore dmstore.json from a copy of the store)")
        version = int(manifest["format_version"])
        int(manifest["train_size"]), int(manifest["n_examples"])
    except (ValueError, TypeError, AttributeError) as e:
        raise StoreError(f"{mpath}: unreadable manifest ({e}); restore dmstore.json from a copy of "
                         f"the store") from None
    ours = format_version()
    if check_version and version > ours:
        raise StoreError(f"{root}: store format version {version} is newer than this dmstore "
                         f"supports (format version {ours}); upgrade dmstore to read it")
    if check_version and version < ours:
        raise StoreError(f"{root}: store format version {version} is older than this dmstore's "
                         f"format version {ours}; migrate it with `dmstore migrate {root}`")
    return manifest


def examples_table(examples, train_size, test_size) -> pa.Table:
    """Build and check the examples table (see `Store.create`)."""
    if examples is None:
        if train_size is None or int(train_size) <= 0:
            raise InputError("--train-size D must be a positive integer (or pass --examples FILE)")
        d, n = int(train_size), int(test_size or 0)
        if n < 0:
            raise InputError("--test-size must be >= 0")
        return pa.table({
            "example_id": pa.array(np.arange(d + n, dtype=np.int32)),
            "split": pa.array(["train"] * d + ["test"] * n, pa.string()),
            "label": pa.nulls(d + n, pa.int32()),
            "group_key": pa.nulls(d + n, pa.string()),
        })
    if isinstance(examples, pa.Table):
        t, where = examples, "examples table"
    else:
        where = str(examples)
        t = read_table_file(examples, where)
    for col in ("example_id", "split"):
        if col not in t.column_names:
            raise InputError(f"{where}: missing column {col!r}; need example_id, split, label[, group_key]")
    if "label" not in t.column_names:
        t = t.append_column("label", pa.nulls(t.num_rows, pa.int32()))
    if "group_key" not in t.column_names:
        t = t.append_column("group_key", pa.nulls(t.num_rows, pa.string()))
    try:
        base = pa.table({
            "example_id": t["example_id"].cast(pa.int32()),
            "split": t["split"].cast(pa.string()),
            "label": t["label"].cast(pa.int32()),
            "group_key": t["group_key"].cast(pa.string()),
        })
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise InputError(f"{where}: bad column type ({e})") from None
    extra = [c for c in t.column_names if c not in base.column_names]
    for c in extra:
        base = base.append_column(c, t[c])
    ids = base["example_id"].to_numpy(zero_copy_only=False)
    if base["example_id"].null_count:
        row = base["example_id"].to_pylist().index(None)
        raise InputError(f"{where}: data row {row + 1}: example_id is empty; every example needs an id")
    splits = base["split"].to_pylist()
    empty = [i for i, v in enumerate(splits) if v is None or not v.strip()]
    if empty:
        raise InputError(f"{where}: data row {empty[0] + 1}: split is empty ({len(empty)} row(s)); every "
                         f"example needs a split such as train or test")
    order = np.argsort(ids)
    if not np.array_equal(ids[order], np.arange(len(ids))):
        raise InputError(f"{where}: example_id must be 0..{len(ids) - 1}, each once (dense, 0-based)")
    base = base.take(pa.array(order))
    split = np.asarray(base["split"].to_pylist())
    d = int((split == "train").sum())
    if d and not (split[:d] == "train").all():
        raise InputError(f"{where}: train examples must hold ids 0..{d - 1} (mask bit i is example i); "
                         f"renumber so the train split comes first")
    return base
