"""The reference implementation's training store: `masks.npy`, margin arrays and
`_completed.npy` (only completed rows are read)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..store import validate as V
from ..store.writer import IngestReport
from .npy import ArraySource, load_npy, tail_roles


def ingest_reference(store, directory, alpha: float, experiment: str, eval_last: int = 0,
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
                raise InputError(f"{p}: {arr.shape[1]} columns fit both splits; say which "
                                 f"(margin_targets={{'{name}': 'train'}} in Python, --margins {name}=test "
                                 f"on the command line)")
            split = "train" if arr.shape[1] == d else "test" if arr.shape[1] == n_test else None
        if split not in ("train", "test"):
            raise InputError(f"{p}: {arr.shape[1]} columns match neither the {d} train nor the "
                             f"{n_test} test examples; map it to a split (margin_targets={{'{name}': 'test'}} "
                             f"in Python, --margins {name}=test on the command line)")
        margin_files.append((p, store.example_ids(split)))
    if margin_targets:
        raise InputError(f"margin_targets names {', '.join(margin_targets)} but no such array is in {directory}",
                         params=("margin_targets",))
    if not margin_files:
        raise InputError(f"{directory}: no margin arrays (2-D .npy files besides masks.npy)")
    m = load_npy(directory / "masks.npy", 2).shape[0]
    if completed.size != m:
        raise InputError(f"{directory / '_completed.npy'}: {completed.size} rows but masks.npy has {m}")
    roles_all = tail_roles(rows.size, eval_last, val_last)
    src = ArraySource(store, experiment, alpha, directory / "masks.npy", margin_files,
                       "reference", rows, roles_all, acc, "ingest reference")
    return store.ingest(src, mode)
