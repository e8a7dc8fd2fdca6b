"""The examples table a store is created with: checked, typed and ordered (train ids first)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import InputError
from .validate import read_table_file

# The splits an example may have: train (the examples masks select), test (the default targets)
# and val (held-out examples to target apart from test, e.g. to tune a method on). A closed
# list, so a typo such as 'trian' is refused instead of becoming a split of its own.
SPLITS = ("train", "test", "val")


def examples_table(examples, train_size, test_size) -> pa.Table:
    """Build and check the examples table (see `Store.create`)."""
    if examples is None:
        if train_size is None or int(train_size) <= 0:
            raise InputError("train_size must be a positive integer (or pass examples)",
                             params=("train_size", "examples"))
        d, n = int(train_size), int(test_size or 0)
        if n < 0:
            raise InputError("test_size must be >= 0", params=("test_size",))
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
    bad = sorted({v for v in splits if v not in SPLITS})
    if bad:
        row = next(i for i, v in enumerate(splits) if v == bad[0])
        raise InputError(f"{where}: data row {row + 1}: split {bad[0]!r} is not one of {', '.join(SPLITS)} "
                         f"({sum(v in bad for v in splits)} row(s) with {', '.join(map(repr, bad))}); fix the "
                         f"spelling — the store is not created")
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
