"""CIFAR-10 ResNet-9 with FFCV data loading, for GPU users (paper appendix D.2).

Hyperparameters (Table D.2): SGD, initial/peak LR 0.5, batch 512, 24 epochs, a triangular
(cyclic) schedule peaking at epoch 5, momentum 0.9, weight decay 5e-4; augmentation: random 4 px
translation, horizontal flip, 8×8 Cutout; half precision on CUDA.

Data come from user-supplied FFCV `.beton` files (`image` RGB field, `label` int field), e.g.
written with ffcv's `DatasetWriter` from torchvision's CIFAR10. Paths: the constructor's
arguments or the environment variables DMSTORE_CIFAR_TRAIN / DMSTORE_CIFAR_TEST. `image(ids)`
reads the pictures back from the same files (raw or JPEG fields), so `dmstore serve` and the
report show them.

Install the optional extra: `pip install 'dmstore[ffcv]'` (needs Debian's libopencv-dev and
libturbojpeg0-dev to build). `import ffcv` sets torch to one thread; the recipe restores the
count it found.
"""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from ..errors import InputError

CIFAR_MEAN = (125.307, 122.961, 113.8575)
CIFAR_STD = (51.5865, 50.847, 51.255)


def conv_bn(c_in, c_out, k=3, s=1, p=1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride=s, padding=p, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class Residual(nn.Module):
    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return x + self.module(x)


def resnet9(num_classes: int = 10, width: int = 64) -> nn.Module:
    """The ResNet-9 of the paper's CIFAR-10 experiments (Kakao Brain / FFCV variant)."""
    w = width
    return nn.Sequential(
        conv_bn(3, w), conv_bn(w, 2 * w, k=5, s=2, p=2),
        Residual(nn.Sequential(conv_bn(2 * w, 2 * w), conv_bn(2 * w, 2 * w))),
        conv_bn(2 * w, 4 * w), nn.MaxPool2d(2),
        Residual(nn.Sequential(conv_bn(4 * w, 4 * w), conv_bn(4 * w, 4 * w))),
        conv_bn(4 * w, 2 * w, p=0), nn.AdaptiveMaxPool2d((1, 1)), nn.Flatten(),
        nn.Linear(2 * w, num_classes, bias=False), _Scale(0.2))


class _Scale(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s

    def forward(self, x):
        return x * self.s


class _Normalize(nn.Module):
    def __init__(self, device, dtype):
        super().__init__()
        self.mean = torch.tensor(CIFAR_MEAN, device=device, dtype=dtype).view(1, 3, 1, 1)
        self.std = torch.tensor(CIFAR_STD, device=device, dtype=dtype).view(1, 3, 1, 1)

    def forward(self, x):
        return (x - self.mean) / self.std


class _Beton:
    """One FFCV .beton file with an `image` RGB field and a `label` int field: its labels, and its
    images decoded one at a time from a memory map (raw pixels, or JPEG through OpenCV, which
    ffcv itself requires)."""

    RAW = 1  # ffcv.fields.rgb_image.IMAGE_MODES['raw'] (0: JPEG)

    def __init__(self, path: str):
        from ffcv.reader import Reader
        r = Reader(path)
        names = list(r.field_names)
        for field in ("image", "label"):
            if field not in names:
                raise InputError(f"{path}: the .beton has fields {names}; recipe cifar10 needs an 'image' RGB "
                                 f"field and a 'label' int field (write them with ffcv's DatasetWriter)")
        self.path = path
        self.labels = np.asarray(r.metadata[f"f{names.index('label')}"], dtype=np.int64).ravel()
        self._meta = r.metadata[f"f{names.index('image')}"]
        order = np.argsort(r.alloc_table["ptr"])
        self._ptrs, self._sizes = r.alloc_table["ptr"][order], r.alloc_table["size"][order]
        self._file = None

    def image(self, j: int) -> np.ndarray:
        """uint8 [h, w, 3] of sample j."""
        if self._file is None:
            self._file = np.memmap(self.path, dtype=np.uint8, mode="r")
        mode, w, h, ptr = (int(self._meta[j][k]) for k in ("mode", "width", "height", "data_ptr"))
        if mode == self.RAW:
            return np.array(self._file[ptr:ptr + h * w * 3]).reshape(h, w, 3)
        import cv2
        size = int(self._sizes[np.searchsorted(self._ptrs, ptr)])
        bgr = cv2.imdecode(np.asarray(self._file[ptr:ptr + size]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{self.path}: sample {j}'s JPEG does not decode")
        return bgr[:, :, ::-1].copy()


class Cifar10ResNet9:
    """Recipe 'cifar10': one ResNet-9 per mask, trained with FFCV loaders on the mask's subset."""
    name = "cifar10"

    def __init__(self, train_beton: str | None = None, test_beton: str | None = None, epochs: int = 24,
                 batch_size: int = 512, lr: float = 0.5, peak_epoch: int = 5, momentum: float = 0.9,
                 weight_decay: float = 5e-4, width: int = 64, device: str | None = None,
                 num_workers: int | None = None):
        threads = torch.get_num_threads()
        try:
            import ffcv  # noqa: F401
        except ImportError:
            raise InputError("recipe cifar10 needs ffcv: pip install 'dmstore[ffcv]' (and Debian's "
                             "libopencv-dev libturbojpeg0-dev)") from None
        torch.set_num_threads(threads)  # `import ffcv` sets torch to one thread: CPU training would use one core
        self.train_beton = train_beton or os.environ.get("DMSTORE_CIFAR_TRAIN")
        self.test_beton = test_beton or os.environ.get("DMSTORE_CIFAR_TEST")
        for p, var in ((self.train_beton, "DMSTORE_CIFAR_TRAIN"), (self.test_beton, "DMSTORE_CIFAR_TEST")):
            if not p or not os.path.exists(p):
                raise InputError(f"recipe cifar10 needs FFCV .beton files: set {var} or pass the path ({p!r})")
        self.epochs, self.batch_size, self.lr, self.peak_epoch = epochs, batch_size, lr, peak_epoch
        self.momentum, self.weight_decay, self.width = momentum, weight_decay, width
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        # ffcv's loaders run numba threads, which cannot outnumber numba's cap (the machine's CPUs):
        # 8 workers fail with a ValueError on a smaller machine.
        import numba
        cap = int(numba.config.NUMBA_NUM_THREADS)
        if num_workers is not None and not 1 <= num_workers <= cap:
            raise InputError(f"recipe cifar10: num_workers={num_workers}, but ffcv's loaders can run 1..{cap} "
                             f"threads here (numba's NUMBA_NUM_THREADS); pass a number in that range")
        self.num_workers = num_workers or min(8, cap)
        self._betons = {"train": _Beton(self.train_beton), "test": _Beton(self.test_beton)}
        self._labels = {split: b.labels for split, b in self._betons.items()}
        self.d = len(self._labels["train"])

    def config(self) -> dict:
        """Every setting that changes a trained model (fingerprinted into the models' source)."""
        return {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "peak_epoch": self.peak_epoch,
                "momentum": self.momentum, "weight_decay": self.weight_decay, "width": self.width}

    def image(self, example_ids) -> np.ndarray:
        """uint8 [k, h, w, 3] (32×32 for CIFAR-10): the examples' images as stored in the .beton
        files (train ids 0..d-1, then test), for the explorer and the report. Read from the file
        directly (no loader, no augmentation); an id outside the examples raises IndexError."""
        ids = np.asarray(example_ids, dtype=np.int64).ravel()
        n = self.d + len(self._labels["test"])
        bad = ids[(ids < 0) | (ids >= n)]
        if bad.size:
            raise IndexError(f"recipe cifar10 has examples 0..{n - 1}: no example {int(bad[0])}")
        imgs = [self._betons["train"].image(int(i)) if i < self.d else self._betons["test"].image(int(i - self.d))
                for i in ids]
        return np.stack(imgs) if imgs else np.zeros((0, 32, 32, 3), np.uint8)

    def examples(self) -> pa.Table:
        tr, te = self._labels["train"], self._labels["test"]
        n = tr.size + te.size
        return pa.table({"example_id": np.arange(n, dtype=np.int32), "split": ["train"] * tr.size + ["test"] * te.size,
                         "label": np.concatenate([tr, te]).astype(np.int32), "group_key": pa.nulls(n, pa.string())})

    def _loader(self, path, indices, train: bool, seed: int):
        from ffcv.fields.decoders import IntDecoder, SimpleRGBImageDecoder
        from ffcv.loader import Loader, OrderOption
        from ffcv.transforms import (Convert, Cutout, RandomHorizontalFlip, RandomTranslate, Squeeze, ToDevice,
                                     ToTensor, ToTorchImage)
        half = torch.float16 if self.device.type == "cuda" else torch.float32
        fill = tuple(int(c) for c in CIFAR_MEAN)
        image = [SimpleRGBImageDecoder()]
        if train:
            image += [RandomHorizontalFlip(), RandomTranslate(padding=4, fill=fill), Cutout(8, fill)]
        image += [ToTensor(), ToDevice(self.device, non_blocking=True), ToTorchImage(), Convert(half)]
        label = [IntDecoder(), ToTensor(), ToDevice(self.device), Squeeze()]
        return Loader(path, batch_size=self.batch_size, num_workers=self.num_workers,
                      order=OrderOption.RANDOM if train else OrderOption.SEQUENTIAL, drop_last=train,
                      indices=indices, seed=seed, pipelines={"image": image, "label": label})

    def _train_one(self, mask: np.ndarray, seed: int) -> np.ndarray:
        torch.manual_seed(seed)
        dt = torch.float16 if self.device.type == "cuda" else torch.float32
        model = nn.Sequential(_Normalize(self.device, dt), resnet9(width=self.width)).to(self.device)
        model = model.to(memory_format=torch.channels_last)
        loader = self._loader(self.train_beton, np.flatnonzero(mask), True, seed % (2 ** 31))
        steps = self.epochs * len(loader)
        peak = self.peak_epoch * len(loader)
        opt = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=self.momentum, nesterov=True,
                              weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: s / max(1, peak) if s < peak else max(0.0, (steps - s) / max(1, steps - peak)))
        scaler = torch.amp.GradScaler(enabled=self.device.type == "cuda")
        loss_fn = nn.CrossEntropyLoss()
        model.train()
        for _ in range(self.epochs):
            for x, y in loader:
                opt.zero_grad(set_to_none=True)
                with torch.autocast(self.device.type, enabled=self.device.type == "cuda"):
                    loss = loss_fn(model(x), y)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                sched.step()
        model.eval()
        out = []
        with torch.no_grad(), torch.autocast(self.device.type, enabled=self.device.type == "cuda"):
            for path in (self.train_beton, self.test_beton):
                for x, y in self._loader(path, None, False, 0):
                    logits = model(x).float()
                    correct = logits.gather(1, y[:, None])[:, 0]
                    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
                    out.append((correct - other).cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def train(self, masks: np.ndarray, seeds: np.ndarray) -> dict:
        margins = np.stack([self._train_one(m, int(s)) for m, s in zip(masks, seeds)])
        right = margins > 0
        return {"margins": margins, "train_accuracy": right[:, : self.d].mean(1),
                "test_accuracy": right[:, self.d:].mean(1)}
