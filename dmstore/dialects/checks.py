"""Which DuckDB constructs have no faithful translation: sqlglot passes DuckDB-only functions
through or rewrites them silently, so every translation is checked here first."""
from __future__ import annotations

from sqlglot import exp

# DuckDB functions with no faithful equivalent that sqlglot would pass through or mangle.
_DUCKDB_ONLY = {"get_bit", "list_distance", "generate_subscripts", "query_table", "list_contains",
                "getvariable", "bit_count", "list_sort"}
# The same, where sqlglot parses them into typed nodes (bit order, list semantics differ).
_TYPED_DUCKDB_ONLY = {"getbit": "get_bit()", "listdistance": "list_distance()",
                      "generatesubscripts": "generate_subscripts()", "bitcount": "bit_count()"}
_NO_PARQUET = {"postgres", "bigquery"}  # no reading Parquet files from SQL


def problems(tree: exp.Expression, dialect: str) -> list[str]:
    """The DuckDB-only constructs of `tree` that would not translate faithfully to `dialect`."""
    found = []
    for node in tree.walk():
        if isinstance(node, exp.Anonymous) and node.name.lower() in _DUCKDB_ONLY:
            found.append(f"{node.name.lower()}()")
        elif type(node).__name__.lower() in _TYPED_DUCKDB_ONLY:
            found.append(_TYPED_DUCKDB_ONLY[type(node).__name__.lower()])
        elif isinstance(node, (exp.ArgMax, exp.ArgMin)) and node.args.get("count") is not None:
            found.append(f"{'max_by' if isinstance(node, exp.ArgMax) else 'min_by'}(…, k)")
        elif isinstance(node, exp.ArrayAgg) and node.find(exp.Order) is not None:
            found.append("list(… ORDER BY …)")
        elif isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.BIT):
            found.append("CAST(… AS BIT)")
        elif isinstance(node, exp.Unnest):
            found.append("unnest()")
        elif isinstance(node, exp.Struct):
            found.append("struct literal {…}")
        elif dialect in _NO_PARQUET and (type(node).__name__ == "ReadParquet" or (
                isinstance(node, exp.Anonymous) and node.name.lower() == "read_parquet")):
            found.append("read_parquet()")
    return sorted(set(found))
