"""Table schemas, loaded from `schemas/*.json` (the single source of truth).

`arrow_schema(name)` gives the pyarrow schema that every written file of that table has;
tests compare written files against it.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import pyarrow as pa

TABLES = ("examples", "models", "margins", "fit_runs", "fits", "weights", "eval_predictions",
          "counterfactuals", "support", "embedding_pca", "embedding_variance", "clusters")

_TYPES = {
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "string": pa.string(),
    "binary": pa.binary(),
    "bool": pa.bool_(),
}


@lru_cache(maxsize=None)
def table_spec(name: str) -> dict:
    """The parsed `schemas/<name>.json`."""
    if name not in TABLES:
        raise KeyError(name)
    text = resources.files("dmstore.schemas").joinpath(f"{name}.json").read_text()
    return json.loads(text)


@lru_cache(maxsize=None)
def format_version() -> int:
    """The store format version this code writes (from `schemas/store.json`)."""
    text = resources.files("dmstore.schemas").joinpath("store.json").read_text()
    return int(json.loads(text)["format_version"])


@lru_cache(maxsize=None)
def arrow_schema(name: str) -> pa.Schema:
    """pyarrow schema of table `name`."""
    cols = table_spec(name)["columns"]
    return pa.schema([pa.field(c["name"], _TYPES[c["type"]], nullable=c["nullable"]) for c in cols])


def column_names(name: str) -> list[str]:
    return [c["name"] for c in table_spec(name)["columns"]]
