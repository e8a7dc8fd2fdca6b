"""CIFAR-10 recipe smoke test: a tiny synthetic image set written with ffcv's DatasetWriter,
two tiny ResNet-9s trained on CPU. Skipped cleanly when ffcv (an optional extra) is missing."""
import numpy as np
import pytest

ffcv = pytest.importorskip("ffcv", reason="ffcv is an optional extra (pip install 'dmstore[ffcv]')")


class _Images:
    def __init__(self, n, seed):
        rng = np.random.default_rng(seed)
        self.x = rng.integers(0, 255, size=(n, 32, 32, 3), dtype=np.uint8)
        self.y = rng.integers(0, 10, size=n)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def _write(path, n, seed):
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter
    DatasetWriter(str(path), {"image": RGBImageField(), "label": IntField()}, num_workers=1).from_indexed_dataset(_Images(n, seed))


def test_tiny_resnet9_trains_on_cpu(tmp_path):
    import torch
    from dmstore.recipes.cifar10 import Cifar10ResNet9
    threads = torch.get_num_threads()
    _write(tmp_path / "train.beton", 32, 0)
    _write(tmp_path / "test.beton", 16, 1)
    rec = Cifar10ResNet9(str(tmp_path / "train.beton"), str(tmp_path / "test.beton"), epochs=1, batch_size=8,
                         width=4, device="cpu", num_workers=1)
    assert rec.d == 32 and rec.examples().num_rows == 48
    masks = np.zeros((2, 32), bool)
    masks[0, :16] = masks[1, 16:] = True
    out = rec.train(masks, np.array([1, 2]))
    assert out["margins"].shape == (2, 48) and np.isfinite(out["margins"]).all()
    torch.set_num_threads(threads)  # `import ffcv` sets torch to one thread
