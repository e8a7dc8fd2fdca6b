"""A validated batch of model records, in the form the store writes.

`ModelBatch.from_arrays` runs every check of `validate`; `models_table` / `margins_table` build
the Arrow tables of one batch directory. Margins are written model-major with the batch's sorted
target ids as the inner order, so a reader can take the `margin` column alone and reshape it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from . import validate as V

MAX_CELLS = 4_000_000  # margins per written batch (~16 MB as float32): bounds memory whatever the input


@dataclass
class ModelBatch:
    experiment: str
    alpha: float
    packed: np.ndarray          # uint8 [m, ceil(d/8)]: np.packbits of the masks
    n_included: np.ndarray      # int32 [m]
    margins: np.ndarray         # float32 [m, n], columns in target_ids order (sorted)
    target_ids: np.ndarray      # int32 [n], ascending
    seeds: np.ndarray | None    # int64 [m]
    mask_ids: np.ndarray | None  # int64 [m]
    roles: np.ndarray           # object [m]
    model_ids: np.ndarray | None  # int64 [m]
    source: str
    source_rows: np.ndarray | None  # int64 [m]
    train_accuracy: np.ndarray | None
    test_accuracy: np.ndarray | None
    digests: list

    @property
    def m(self) -> int:
        return self.packed.shape[0]

    @classmethod
    def from_arrays(cls, *, experiment, alpha, masks, margins, target_ids, d, n_examples, where,
                    seeds=None, mask_ids=None, roles=None, model_ids=None, source="api",
                    source_rows=None, train_accuracy=None, test_accuracy=None, row0=0,
                    check_alpha=True) -> "ModelBatch":
        """Validate and normalize one batch (see `validate`)."""
        experiment = V.check_experiment(experiment)
        alpha = V.check_alpha(alpha)
        masks = V.masks_to_bool(masks, d, where, row0)
        m = masks.shape[0]
        t = V.check_target_ids(target_ids, n_examples, where)
        margins = V.margins_to_f32(margins, m, t.size, where, row0)
        n_inc = masks.sum(axis=1, dtype=np.int64)
        if check_alpha:
            V.check_mask_rows(n_inc, alpha, d, where, row0)
        order = np.argsort(t, kind="stable")
        if (order != np.arange(t.size)).any():
            t, margins = t[order], margins[:, order]
        seeds = V.optional_int(seeds, m, "seeds", where)
        mask_ids = V.optional_int(mask_ids, m, "mask_ids", where)
        model_ids = V.optional_int(model_ids, m, "model_ids", where)
        if model_ids is not None:
            V.no_duplicates(model_ids, "model id", where)
            if (model_ids < 0).any():
                raise V.InputError(f"{where}: model ids must be non-negative")
        source_rows = V.optional_int(source_rows, m, "source_rows", where)
        if source_rows is not None:
            V.no_duplicates(source_rows, "source row", where)
        roles = V.roles_array(roles, m, where)
        packed = np.packbits(masks, axis=1)
        margins = np.ascontiguousarray(margins, dtype=np.float32)
        b = cls(experiment, alpha, packed, n_inc.astype(np.int32), margins, t, seeds, mask_ids, roles,
                model_ids, source, source_rows,
                V.optional_float(train_accuracy, m, "train_accuracy", where),
                V.optional_float(test_accuracy, m, "test_accuracy", where), [])
        b.digests = b._digests()
        return b

    def _digests(self) -> list:
        head = f"{self.experiment}\0{self.alpha!r}\0".encode() + self.target_ids.tobytes()
        out = []
        for i in range(self.m):
            h = hashlib.blake2b(head, digest_size=16)
            seed = "none" if self.seeds is None else str(int(self.seeds[i]))
            h.update(f"\0{seed}\0{self.roles[i]}\0".encode())
            h.update(self.packed[i].tobytes())
            h.update(self.margins[i].tobytes())
            out.append(h.hexdigest())
        return out

    def take(self, rows: np.ndarray) -> "ModelBatch":
        """The sub-batch of `rows` (indices)."""
        pick = lambda a: None if a is None else a[rows]  # noqa: E731
        return ModelBatch(self.experiment, self.alpha, self.packed[rows], self.n_included[rows],
                          self.margins[rows], self.target_ids, pick(self.seeds), pick(self.mask_ids),
                          self.roles[rows], pick(self.model_ids), self.source, pick(self.source_rows),
                          pick(self.train_accuracy), pick(self.test_accuracy),
                          [self.digests[i] for i in rows])

    def models_table(self, model_ids: np.ndarray, mask_ids: np.ndarray) -> pa.Table:
        m = self.m
        width = self.packed.shape[1]
        flat = pa.py_buffer(np.ascontiguousarray(self.packed).tobytes())
        offsets = pa.py_buffer((np.arange(m + 1, dtype=np.int32) * width).tobytes())
        mask_col = pa.BinaryArray.from_buffers(pa.binary(), m, [None, offsets, flat])
        nulls = pa.nulls(m)
        return pa.table({
            "model_id": pa.array(model_ids, pa.int64()),
            "experiment": pa.array([self.experiment] * m, pa.string()),
            "alpha": pa.array(np.full(m, self.alpha), pa.float64()),
            "seed": nulls.cast(pa.int64()) if self.seeds is None else pa.array(self.seeds, pa.int64()),
            "mask_id": pa.array(mask_ids, pa.int64()),
            "role": pa.array(self.roles.tolist(), pa.string()),
            "mask": mask_col,
            "n_included": pa.array(self.n_included, pa.int32()),
            "train_accuracy": nulls.cast(pa.float64()) if self.train_accuracy is None
            else pa.array(self.train_accuracy, pa.float64()),
            "test_accuracy": nulls.cast(pa.float64()) if self.test_accuracy is None
            else pa.array(self.test_accuracy, pa.float64()),
            "source": pa.array([self.source] * m, pa.string()),
            "source_row": nulls.cast(pa.int64()) if self.source_rows is None
            else pa.array(self.source_rows, pa.int64()),
            "digest": pa.array(self.digests, pa.string()),
        })

    def margins_table(self, model_ids: np.ndarray) -> pa.Table:
        m, n = self.margins.shape
        return pa.table({
            "model_id": pa.array(np.repeat(model_ids.astype(np.int64), n), pa.int64()),
            "example_id": pa.array(np.tile(self.target_ids, m), pa.int32()),
            "margin": pa.array(self.margins.reshape(-1), pa.float32()),
        })
