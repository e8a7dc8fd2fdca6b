"""The paper's published release: `train_masks_<P>pct.npy` bool [M, d] with float16 margins
`train_margins_<P>pct.npy` [M, d] and `test_margins_<P>pct.npy` [M, n_test]."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..store import validate as V
from ..store.writer import IngestReport
from .npy import ArraySource, load_npy, tail_roles


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


def ingest_release(store, directory, alpha: float, experiment: str, eval_last: int = 0,
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
    src = ArraySource(store, experiment, alpha, files["train_masks"], margin_files, "release",
                       np.arange(m), tail_roles(m, eval_last, val_last), {}, "ingest release")
    return store.ingest(src, mode)
