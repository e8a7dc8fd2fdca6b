"""Many small MLPs at once on Fashion-MNIST at the paper's shape: the original 60,000 train and
10,000 test 28×28 images (Zalando's idx files, as Debian's `dataset-fashion-mnist` installs them in
/usr/share/datasets/fashion-mnist; nothing is downloaded).

Split: the original one — example ids 0…59,999 are the train images in file order (mask bit i is
train image i), ids 60,000…69,999 the test images in file order. Preprocessing: 2×2 average
pooling to 14×14 (196 inputs), scaled to [0, 1], centred per pixel on the train split and divided
by one standard deviation of the train split. Each model is a 196 → 32 → 10 MLP trained with SGD
+ momentum on its own subset, K models at once (`recipes.mlp.BatchedMLP`).

The files are read from `data` (the recipe's field; `dmstore train --data DIR`), else from the
folder in the environment variable DMSTORE_FASHION_DATA, else from Debian's folder.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import InputError
from .mlp import BatchedMLP

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
         "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")


def fashion_dir(data=None) -> Path:
    """The folder holding the four idx files (gzipped or not); InputError naming the package and
    the option when none does."""
    cands = [data] if data else [os.environ.get("DMSTORE_FASHION_DATA"), DEBIAN_DIR]
    for c in cands:
        if c and all(_file(Path(c), f) is not None for f in FILES.values()):
            return Path(c)
    where = data or " or ".join(c for c in cands if c)
    raise InputError(f"recipe fashion: the Fashion-MNIST idx files ({', '.join(FILES.values())}, .gz or not) are not "
                     f"in {where}; install them with `apt-get install dataset-fashion-mnist` (Debian puts them in "
                     f"{DEBIAN_DIR}) or give their folder with --data DIR (or DMSTORE_FASHION_DATA=DIR)",
                     params=("data",))


def _file(folder: Path, stem: str) -> Path | None:
    for p in (folder / f"{stem}.gz", folder / stem):
        if p.is_file():
            return p
    return None


def read_idx(path: Path) -> np.ndarray:
    """An idx file (gzipped or not) as a numpy array of its declared shape (uint8 data)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise InputError(f"{path}: not an idx file of unsigned bytes (magic {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise InputError(f"{path}: the header says {shape} ({int(np.prod(shape))} bytes), the file holds {data.size}; "
                         f"the file is truncated — reinstall dataset-fashion-mnist")
    return data.reshape(shape)


def load_fashion(data=None) -> tuple[np.ndarray, np.ndarray, int]:
    """(images uint8 [70000, 28, 28], labels int64 [70000], d = 60000): train then test, file order."""
    folder = fashion_dir(data)
    a = {k: read_idx(_file(folder, v)) for k, v in FILES.items()}
    imgs = np.concatenate([a["train_images"], a["test_images"]])
    labels = np.concatenate([a["train_labels"], a["test_labels"]]).astype(np.int64)
    return imgs, labels, len(a["train_labels"])


def preprocess(imgs: np.ndarray, d: int) -> np.ndarray:
    """float32 [n, 196]: 2×2-pooled, [0, 1], centred per pixel and scaled by one train std."""
    X = imgs.reshape(-1, 14, 2, 14, 2).astype(np.float32).mean((2, 4)).reshape(-1, 196) / 255.0
    mu = X[:d].mean(0)
    return ((X - mu) / X[:d].std()).astype(np.float32)


@dataclass
class FashionMLP(BatchedMLP):
    """Recipe 'fashion'. Hyperparameters are per-recipe constants so runs are comparable; chosen
    for throughput on a CPU (see README: test accuracy and models/min on 2 cores)."""
    hidden: int = 32
    epochs: int = 3
    batch_size: int = 128
    lr: float = 0.05
    weight_decay: float = 5e-4
    name: str = "fashion"
    data: str | None = None

    def __post_init__(self):
        self._imgs, self.y, self.d = load_fashion(self.data)
        self.X = preprocess(self._imgs, self.d)
        self.n = len(self.y)
        self.source_index = np.concatenate([np.arange(self.d), np.arange(self.n - self.d)])

    def examples(self) -> pa.Table:
        """example_id, split, label, source_index (row in its idx file), class_name."""
        return self.examples_table(class_name=pa.array([CLASSES[i] for i in self.y]))

    def image(self, example_ids) -> np.ndarray:
        """uint8 [k, 28, 28]: the examples' original images, for the explorer."""
        return self._imgs[np.asarray(example_ids, dtype=np.int64)]
