"""Memory-mapped `.npy` sources: the arrays of the paper's release and of the reference
implementation's store, read chunk by chunk (each chunk validated, then written privately)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..progress import progress
from ..store import batch as B
from ..store import validate as V
from ..store.batch import ModelBatch


def load_npy(path: Path, ndim: int | None = None) -> np.ndarray:
    """Memory-map a `.npy` file; a typed error names the file when it is not one or is cut short."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():   # a FIFO or a device would block or never end
        raise InputError(f"{path}: not a regular file (a directory, pipe or device); give a .npy file")
    with open(path, "rb") as fh:
        head = fh.read(6)
    if head[:4] == b"PK\x03\x04":
        raise InputError(f"{path}: an .npz archive, not a single .npy array; save one array with np.save")
    if head != b"\x93NUMPY":
        what = "empty" if not head else "text" if all(32 <= c < 127 or c in (9, 10, 13) for c in head) else "binary data"
        raise InputError(f"{path}: not a .npy file (it is {what} without the .npy header); save the array "
                         f"with np.save")
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


class ArraySource:
    """Chunks of (masks, margins on targets) read from memory-mapped arrays, validated per file."""

    def __init__(self, store, experiment: str, alpha: float, masks_path: Path,
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
        self.step = max(1, B.MAX_CELLS // max(1, self.targets.size))

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


def tail_roles(m: int, eval_last: int, val_last: int) -> np.ndarray:
    if eval_last < 0 or val_last < 0 or eval_last + val_last > m:
        raise InputError(f"eval_last {eval_last} and val_last {val_last} must be >= 0 and "
                         f"together at most the {m} rows", params=("eval_last", "val_last"))
    roles = np.full(m, "fit", dtype=object)
    if val_last:
        roles[m - eval_last - val_last:m - eval_last] = "val"
    if eval_last:
        roles[m - eval_last:] = "eval"
    return roles
