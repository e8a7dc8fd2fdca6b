"""A store's relations and analytics on Apache Spark (optional extra: `pip install 'dmstore[spark]'`).

    dm = dmstore.spark.register(spark, "runs")                 # one snapshot, as temp views
    dm.topk_neighbors(fit=1, k=10).show()                     # every analytic: a DataFrame
    spark.sql("SELECT count(*) FROM margins WHERE margin < 0")  # every relation: a temp view

Relations keep their DuckDB names and columns (except `models.mask`: packed BINARY, test bits
with the SQL function `in_mask(mask, i)`). The SQL comes from `sql/` (see `dmstore.dialects.spark_sql`).
"""
from __future__ import annotations

import inspect
import itertools
from pathlib import Path

from .dialects import spark_sql
from .errors import InputError
from .storage import paths as P
from .store.state import open_state

_counter = itertools.count()


class SparkStore:
    """One store snapshot registered on a SparkSession: relations are temp views; each analytic
    of `sql/` is a method with the macro's parameters that returns a DataFrame."""

    def __init__(self, spark, root: Path, version: int, location: str, example_columns: list[str]):
        self.spark, self.root, self.version, self.location = spark, root, version, location
        self.example_columns = example_columns
        self.relations = spark_sql.relation_names()

    def __repr__(self):
        return f"SparkStore({str(self.root)!r}, version={self.version}, location={self.location!r})"

    def table(self, name: str):
        """Relation `name` (e.g. 'margins') as a DataFrame."""
        if name not in self.relations:
            raise InputError(f"unknown relation {name!r}; one of {', '.join(self.relations)}")
        return self.spark.table(name)

    def run(self, name: str, **params):
        """Analytic `name` with its parameters (a table parameter takes a DataFrame or the name
        of a table/view) as a DataFrame."""
        a = spark_sql.analytics().get(name)
        if a is None:
            raise InputError(f"unknown analytic {name!r}; one of {', '.join(spark_sql.analytics())}")
        if not spark_sql.available(name, self.example_columns):
            raise InputError(f"{name} needs {'.'.join(a.requires)}, which this store's examples lack")
        args = {}
        for p, default in a.params:
            if p not in params and default is None:
                raise InputError(f"{name}: missing parameter {p!r}")
            v = params.pop(p, None)
            if p in a.table_params and v is not None and not isinstance(v, str):
                view = f"dmstore_arg_{p}_{next(_counter)}"
                v.createOrReplaceTempView(view)
                v = view
            args[p] = v
        if params:
            raise InputError(f"{name}: unknown parameter(s) {', '.join(params)}; it takes "
                             f"{', '.join(p for p, _ in a.params)}")
        return self.spark.sql(spark_sql.analytic_sql(name), args=args)


def _method(a):
    def call(self, *args, **kwargs):
        bound = sig.bind(self, *args, **kwargs)
        return self.run(a.name, **{k: v for k, v in bound.arguments.items() if k != "self"})
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for p, default in a.params:
        params.append(inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                        **({} if default is None else {"default": None})))
    sig = inspect.Signature(params)
    call.__signature__ = sig
    call.__name__ = a.name
    call.__doc__ = a.doc + "\nReturns a Spark DataFrame."
    return call


def _view_method(name: str):
    def call(self):
        return self.table(name)
    call.__name__ = name
    call.__doc__ = f"The `{name}` relation as a Spark DataFrame."
    return call


for _a in spark_sql.analytics().values():
    if _a.name in spark_sql.FUNCTIONS:   # a SQL function in Spark: in_mask(mask, i)
        continue
    setattr(SparkStore, _a.name, _method(_a))
for _v in spark_sql.relation_names():
    if not hasattr(SparkStore, _v):
        setattr(SparkStore, _v, _view_method(_v))


def register_udfs(spark, d: int) -> None:
    """The built-in Python UDFs (`dmstore.engine.udfs.BUILTINS`) as Spark SQL functions (row by
    row), so the analytics that use them (eval_kendall, estimator_comparison) run in Spark too."""
    from .engine.udfs import BUILTINS
    for b in BUILTINS.values():
        spark.udf.register(b.name, b.row(d), b.spark_type)


def register(spark, store, location: str | None = None, as_of: int | None = None) -> SparkStore:
    """Register the store's snapshot (the latest, or version `as_of`) on SparkSession `spark`:
    every relation as a temp view of the same name, reading the snapshot's files at `location`
    (any URI Spark reads: file://, hdfs://, s3a://; default the store's own directory), and the
    SQL function `in_mask(mask, i)` and the Python UDFs (spearman, kendall_tau, bootstrap_ci,
    mask_of). Returns a SparkStore whose methods run the analytics."""
    import pyarrow.parquet as pq
    st = open_state(store, "r", as_of)
    snap = st.snapshot()
    root = Path(st.root).resolve()
    location = location or root.as_uri()
    cols = pq.read_schema(root / P.EXAMPLES).names
    register_udfs(spark, st.d)
    for stmt in spark_sql.source_sql(snap, location) + spark_sql.functions_sql():
        spark.sql(stmt)
    for v in spark_sql.relation_names():
        if spark_sql.available(v, cols):
            spark.sql(spark_sql.view_sql(v))
    return SparkStore(spark, root, snap.version, location, cols)
