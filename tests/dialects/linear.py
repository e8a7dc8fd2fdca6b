"""A plug-in recipe for the dialect tests: margins linear in the mask (plus seed jitter)."""
import numpy as np
import pyarrow as pa

D, NT = 24, 8


class Linear:
    """A plug-in recipe: margins linear in the mask (plus seed jitter); examples with labels,
    group keys (some test examples share a train example's) and feature vectors."""
    name = "lin"

    def __init__(self):
        rng = np.random.default_rng(5)
        self.theta = rng.normal(size=(D, D + NT)) * (rng.random((D, D + NT)) < 0.4)
        self.labels = rng.integers(0, 3, D + NT).astype(np.int32)
        self.groups = [f"g{i}" for i in range(D)] + [f"g{i}" if i % 2 else f"t{i}" for i in range(NT)]
        self.features = rng.normal(size=(D + NT, 3)).astype(np.float32)

    def examples(self):
        return pa.table({"example_id": np.arange(D + NT, dtype=np.int32),
                         "split": ["train"] * D + ["test"] * NT, "label": self.labels,
                         "group_key": self.groups,
                         "features": pa.array(list(self.features), pa.list_(pa.float32()))})

    def train(self, masks, seeds):
        jitter = np.random.default_rng(np.asarray(seeds) % 1000).normal(scale=0.3, size=(len(seeds), D + NT))
        m = (masks @ self.theta + jitter + 0.5).astype(np.float32)
        return {"margins": m, "train_accuracy": (m[:, :D] > 0).mean(1), "test_accuracy": (m[:, D:] > 0).mean(1)}


REC = Linear()
