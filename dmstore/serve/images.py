"""Pictures of examples for the explorer: PNG bytes of one example, from (in this order) a folder
of `{example_id}.png` files (`--images DIR`), the training recipe's `image(ids)` (uint8 [k, h, w]
or [k, h, w, 3]), or the store's `examples.features` when it is a square grey image (8×8, 28×28)
or a square RGB one (32×32×3). Without any of them the store has no pictures and pages show ids
and labels only."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from ..engine.query import run


def png(img: np.ndarray) -> bytes:
    """PNG bytes of uint8 [h, w] (grey) or [h, w, 3] (RGB), no dependencies."""
    img = np.ascontiguousarray(img, dtype=np.uint8)
    h, w = img.shape[:2]
    color = 2 if img.ndim == 3 else 0
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def _from_features(v) -> np.ndarray | None:
    """A square image from a features vector (min–max scaled to 0…255), or None."""
    a = np.asarray(v, dtype=np.float32)
    n = a.size
    for shape in ((int(round(n ** 0.5)),) * 2, (int(round((n / 3) ** 0.5)),) * 2 + (3,)):
        if n and int(np.prod(shape)) == n and shape[0] >= 4:
            lo, hi = float(a.min()), float(a.max())
            scaled = (a - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(a)
            return np.round(scaled).astype(np.uint8).reshape(shape)
    return None


class Images:
    """Where the pictures of one store come from (`source`: 'folder', 'recipe', 'features' or
    None) and `png(example_id)` -> bytes or None."""

    def __init__(self, con, folder=None):
        self.folder = Path(folder) if folder else None
        self.recipe = None
        self.source = None
        self._con = con
        self._cache: dict[int, bytes | None] = {}
        if self.folder is not None:
            self.source = "folder"
            return
        self.recipe = _recipe(con)
        if self.recipe is not None:
            self.source = "recipe"
        elif self._features_column(con):
            self.source = "features"

    @staticmethod
    def _features_column(con) -> bool:
        from ..engine.connect import _columns
        if "features" not in _columns(con, "examples"):
            return False
        row = run(con, "serve_first_features").fetchall()
        return bool(row) and _from_features(row[0][0]) is not None

    @property
    def available(self) -> bool:
        return self.source is not None

    def png(self, example_id: int, lock=None) -> bytes | None:
        """The example's PNG, or None when the store has no picture of it."""
        example_id = int(example_id)
        if self.source == "folder":
            p = self.folder / f"{example_id}.png"
            return p.read_bytes() if p.is_file() else None
        if self.source == "recipe":
            if example_id not in self._cache:
                try:
                    self._cache[example_id] = _recipe_png(self.recipe, example_id)
                except (IndexError, ValueError):
                    self._cache[example_id] = None
            return self._cache[example_id]
        if self.source == "features":
            if lock is not None:
                with lock:
                    rows = run(self._con, "serve_features", i=example_id).fetchall()
            else:
                rows = run(self._con, "serve_features", i=example_id).fetchall()
            img = _from_features(rows[0][0]) if rows and rows[0][0] is not None else None
            return png(img) if img is not None else None
        return None


def _recipe_png(recipe, example_id: int) -> bytes:
    img = np.asarray(recipe.image([example_id]))[0]
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return png(img)


def _recipe(con):
    """The training recipe recorded for the store's models when it can draw its examples
    (has `image`), else None. A recipe that cannot be loaded here is skipped."""
    from ..errors import DmstoreError
    from ..recipes import BUILTIN, load_recipe
    rows = run(con, "serve_train_sources").fetchall()
    for (source,) in rows:
        name = source.split(":")[1].split("/")[0]
        if name not in BUILTIN:
            continue
        try:
            recipe = load_recipe(name)
        except (DmstoreError, ImportError, OSError):
            continue
        if callable(getattr(recipe, "image", None)):
            return recipe
    return None
