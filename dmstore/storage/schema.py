"""Table schemas, loaded from `schemas/*.json` (the single source of truth).

`arrow_schema(name)` gives the pyarrow schema that every written file of that table has;
tests compare written files against it.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import pyarrow as pa

from ..errors import NotFoundError

TABLES = ("examples", "models", "margins", "fit_runs", "fits", "weights", "eval_predictions",
          "weights_by_train",
          "counterfactuals", "support", "embedding_pca", "embedding_variance", "clusters")

# one row per column type of schemas/*.json: its Arrow type, DuckDB type and Spark SQL type
_TYPES = {
    "int32": (pa.int32(), "INTEGER", "INT"),
    "int64": (pa.int64(), "BIGINT", "BIGINT"),
    "float32": (pa.float32(), "FLOAT", "FLOAT"),
    "float64": (pa.float64(), "DOUBLE", "DOUBLE"),
    "string": (pa.string(), "VARCHAR", "STRING"),
    "binary": (pa.binary(), "BLOB", "BINARY"),
    "bool": (pa.bool_(), "BOOLEAN", "BOOLEAN"),
}
_DIALECTS = {"duckdb": 1, "spark": 2}


def sql_type(type_name: str, dialect: str) -> str:
    """The SQL type of schema type `type_name` (e.g. 'int32') in `dialect` ('duckdb' | 'spark')."""
    return _TYPES[type_name][_DIALECTS[dialect]]


@lru_cache(maxsize=None)
def table_spec(name: str) -> dict:
    """The parsed `schemas/<name>.json`."""
    if name not in TABLES:
        raise NotFoundError(f"no table {name!r} in schemas/; tables are {', '.join(TABLES)}")
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
    return pa.schema([pa.field(c["name"], _TYPES[c["type"]][0], nullable=c["nullable"]) for c in cols])


def column_names(name: str) -> list[str]:
    return [c["name"] for c in table_spec(name)["columns"]]
