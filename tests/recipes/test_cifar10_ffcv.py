"""CIFAR-10 recipe: tiny synthetic image sets written with ffcv's DatasetWriter (raw and JPEG),
two tiny ResNet-9s trained on CPU, the pictures read back. Skipped when ffcv (an optional extra) is missing."""
import importlib.util

import numpy as np
import pytest

# Not imported here: `import ffcv` (numba, OpenCV, torch at one thread) would load in every test
# worker at collection; the recipe imports it when a test here builds one.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("ffcv") is None,
                                reason="ffcv is an optional extra (pip install 'dmstore[ffcv]')")


class _Images:
    def __init__(self, n, seed):
        rng = np.random.default_rng(seed)
        self.x = rng.integers(0, 255, size=(n, 32, 32, 3), dtype=np.uint8)
        self.y = rng.integers(0, 10, size=n)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


_WRITER = """
import sys, numpy as np
from ffcv.fields import IntField, RGBImageField
from ffcv.writer import DatasetWriter
mode = sys.argv[1]
for path in sys.argv[2:]:
    x, y = np.load(path + ".x.npy"), np.load(path + ".y.npy")
    class D:
        def __len__(self): return len(y)
        def __getitem__(self, i): return x[i], int(y[i])
    DatasetWriter(path, {"image": RGBImageField(write_mode=mode, jpeg_quality=95), "label": IntField()},
                  num_workers=1).from_indexed_dataset(D())
"""


def _write(folder, train, test, mode="raw"):
    """Write train.beton and test.beton of the image sets `train` and `test` in one fresh
    process: ffcv's writer forks its workers, and a fork of a test process that runs torch,
    DuckDB and Spark threads segfaulted there and hung the suite. Returns the two paths."""
    import subprocess
    import sys
    paths = [str(folder / "train.beton"), str(folder / "test.beton")]
    for path, ds in zip(paths, (train, test)):
        np.save(f"{path}.x.npy", ds.x)
        np.save(f"{path}.y.npy", ds.y)
    subprocess.run([sys.executable, "-c", _WRITER, mode, *paths], check=True, timeout=300, capture_output=True)
    return paths


def test_tiny_resnet9_trains_on_cpu(tmp_path):
    import torch
    from dmstore.recipes.cifar10 import Cifar10ResNet9
    threads = torch.get_num_threads()
    train, test = _write(tmp_path, _Images(32, 0), _Images(16, 1))
    rec = Cifar10ResNet9(train, test, epochs=1, batch_size=8,
                         width=4, device="cpu", num_workers=1)
    assert rec.d == 32 and rec.examples().num_rows == 48
    assert torch.get_num_threads() == threads, "the recipe left torch at ffcv's one thread"
    masks = np.zeros((2, 32), bool)
    masks[0, :16] = masks[1, 16:] = True
    out = rec.train(masks, np.array([1, 2]))
    assert out["margins"].shape == (2, 48) and np.isfinite(out["margins"]).all()


def _smooth(n, seed):
    """Images JPEG keeps: smooth colour gradients (noise would not survive compression)."""
    ds = _Images(n, seed)
    yy, xx = np.mgrid[0:32, 0:32]
    for k in range(n):
        a, b, c = np.random.default_rng(seed + k).integers(1, 7, 3)
        ds.x[k] = np.stack([a * xx, b * yy, c * (xx + yy) // 2], -1).clip(0, 255).astype(np.uint8)
    return ds


@pytest.mark.parametrize("mode", ["raw", "jpg"])
def test_image_reads_the_betons_pictures(tmp_path, mode):
    """`image(ids)` returns the pixels written into the .beton files, train ids then test ids, in
    the order asked (repeats too); JPEG within compression error; a bad id is an IndexError; the
    explorer turns one into a PNG that decodes to the same pixels."""
    import zlib
    from dmstore.errors import InputError
    from dmstore.recipes.cifar10 import Cifar10ResNet9
    from dmstore.serve.images import _recipe_png
    make = _smooth if mode == "jpg" else _Images
    sets = {"train": make(12, 0), "test": make(5, 1)}
    paths = _write(tmp_path, sets["train"], sets["test"], mode)
    rec = Cifar10ResNet9(*paths, device="cpu", num_workers=1)
    with pytest.raises(InputError, match="num_workers=10000"):   # more loader threads than numba allows
        Cifar10ResNet9(*paths, device="cpu", num_workers=10_000)
    truth = np.concatenate([sets["train"].x, sets["test"].x])
    ids = [13, 0, 11, 16, 0, 12]
    got = rec.image(ids)
    assert got.dtype == np.uint8 and got.shape == (6, 32, 32, 3)
    if mode == "raw":
        np.testing.assert_array_equal(got, truth[ids])
    else:
        err = np.abs(got.astype(int) - truth[ids].astype(int))
        assert err.mean() < 2 and err.max() < 40, (err.mean(), err.max())
    np.testing.assert_array_equal(rec.examples().column("label").to_numpy(),
                                  np.concatenate([sets["train"].y, sets["test"].y]))
    for bad in (17, -1):
        with pytest.raises(IndexError, match="0..16"):
            rec.image([bad])
    assert rec.image([]).shape == (0, 32, 32, 3)
    body = _recipe_png(rec, 16)
    raw = zlib.decompress(body[body.index(b"IDAT") + 4:])
    rows = np.frombuffer(raw, np.uint8).reshape(32, 1 + 32 * 3)
    assert (rows[:, 0] == 0).all()
    np.testing.assert_array_equal(rows[:, 1:].reshape(32, 32, 3), got[3])


def test_the_recipe_keeps_torchs_threads(tmp_path):
    """`import ffcv` sets torch to one thread; the recipe, which imports it first, restores the
    count (a fresh process, since this one imported ffcv already)."""
    import subprocess
    import sys
    train, test = _write(tmp_path, _Images(4, 0), _Images(2, 1))
    code = ("import torch; torch.set_num_threads(3); from dmstore.recipes.cifar10 import Cifar10ResNet9; "
            f"Cifar10ResNet9({train!r}, {test!r}, device='cpu'); "
            "print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "3", out.stdout + out.stderr
