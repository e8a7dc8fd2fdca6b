"""Benchmark: the same analytics in local Spark (dmstore.spark) and in DuckDB, on one store of
>= 100 M margins (default 10,000 models x 10,000 examples), in the same run.

    python bench/bench_spark.py                  # 100 M margins (~8 GB RAM peak, ~10 min on 2 cores)
    python bench/bench_spark.py --models 2000    # 20 M margins, quicker

Steps: synthesize and append the store (5 batches), fit LASSO and difference-of-means
datamodels for --targets test targets (the eval models get predictions), then time (median of
--repeats) in each engine:
  estimator comparison   SELECT * FROM estimator_comparison   (joins eval predictions to margins)
  top-k neighbours       topk_neighbors(fit, 10)
  margin scan            SELECT example_id, avg(margin) … GROUP BY example_id  (the whole table)
Both engines' rows are checked equal. Spark runs local[--cores] with --spark-memory of driver heap.
"""
from __future__ import annotations

import math
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from dmstore.testing import block_masks as make_masks  # noqa: E402
from timing import options, timed  # noqa: E402

from dmstore import Store  # noqa: E402
from dmstore.fit import fit  # noqa: E402


def build(root, m, d, n_test, seed=0):
    rng = np.random.default_rng(seed)
    st = Store.create(root, train_size=d, test_size=n_test)
    n = d + n_test
    theta = (rng.standard_t(df=3, size=(d, n)) * (rng.random((d, n)) < 0.05)).astype(np.float32)
    roles = np.array(["fit"] * int(0.8 * m) + ["val"] * int(0.1 * m) + ["eval"] * (m - int(0.8 * m) - int(0.1 * m)),
                     dtype=object)
    step = max(1, m // 5)
    for lo in range(0, m, step):
        hi = min(m, lo + step)
        X = make_masks(rng, hi - lo, d)
        Y = X.astype(np.float32) @ theta + rng.normal(scale=2.0, size=(hi - lo, n)).astype(np.float32) + 1.0
        st.append("bench", 0.5, X, Y.astype(np.float16).astype(np.float32), np.arange(n), roles=roles[lo:hi],
                  seeds=np.arange(lo, hi))
    return st


def same(a, b, what):
    key = lambda r: tuple(str(v) if not isinstance(v, float) else round(v, 3) for v in r)  # noqa: E731
    a, b = sorted(a, key=key), sorted(b, key=key)
    assert len(a) == len(b), f"{what}: {len(a)} vs {len(b)} rows"
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            if isinstance(u, float) or isinstance(v, float):
                assert u is not None and v is not None and math.isclose(float(u), float(v), rel_tol=1e-5, abs_tol=1e-6) \
                    or u is None and v is None or (math.isnan(float(u)) and math.isnan(float(v))), (what, x, y)
            else:
                assert u == v, (what, x, y)


def main():
    a = options(__doc__, models=10000, d=(2000, "train examples (mask bits)"), test=(8000, "test examples"),
                targets=(500, "test targets fitted"), repeats=3, cores=os.cpu_count() or 2, spark_memory="6g",
                dir=(None, "where to build the store (default a temp dir)"))
    tmp = a.dir or tempfile.mkdtemp(prefix="bench_spark_")
    t0 = time.perf_counter()
    st = build(os.path.join(tmp, "s"), a.models, a.d, a.test)
    n_margins = a.models * (a.d + a.test)
    size = sum(os.path.getsize(f) for f in st.snapshot().all_files())
    print(f"store: {a.models:,} models x {a.d + a.test:,} examples = {n_margins / 1e6:.0f} M margins, "
          f"{size / 1e9:.2f} GB live, built in {time.perf_counter() - t0:.0f} s")
    targets = list(range(a.d, a.d + a.targets))
    t0 = time.perf_counter()
    lasso = fit(st, "bench", 0.5, targets=targets, n_lambdas=10, lambda_min_ratio=1e-2, progress=False).fit_id
    dm = fit(st, "bench", 0.5, estimator="diff_means", targets=targets, progress=False).fit_id
    print(f"fits {lasso} (lasso) and {dm} (diff_means) of {a.targets} targets in {time.perf_counter() - t0:.0f} s")

    from pyspark.sql import SparkSession

    from dmstore.spark import register
    spark = (SparkSession.builder.master(f"local[{a.cores}]").appName("bench_spark")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.memory", a.spark_memory)
             .config("spark.sql.warehouse.dir", tempfile.mkdtemp(prefix="spark-warehouse-"))
             .config("spark.sql.shuffle.partitions", str(2 * a.cores)).getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    dmsp = register(spark, st)
    con = st.connect(threads=a.cores)
    cases = [
        ("estimator comparison", lambda: con.sql("SELECT * FROM estimator_comparison").fetchall(),
         lambda: dmsp.estimator_comparison().collect()),
        ("top-10 neighbours", lambda: con.sql(f"SELECT * FROM topk_neighbors({lasso}, 10)").fetchall(),
         lambda: dmsp.topk_neighbors(lasso, 10).collect()),
        ("margin scan (avg per example)",
         lambda: con.sql("SELECT example_id, avg(margin) FROM margins GROUP BY example_id").fetchall(),
         lambda: spark.sql("SELECT example_id, avg(margin) FROM margins GROUP BY example_id").collect()),
    ]
    print(f"\n{'analytic':32s} {'DuckDB s':>9s} {'Spark s':>9s} {'Spark/DuckDB':>13s}   "
          f"(median of {a.repeats}; {a.cores} cores; local[{a.cores}])")
    for name, duck, sp in cases:
        td, rd = timed(duck, a.repeats)
        ts, rs = timed(sp, a.repeats)
        same(rd, [tuple(r) for r in rs], name)
        print(f"{name:32s} {td:9.2f} {ts:9.2f} {ts / td:12.1f}x   rows equal ({len(rd):,})")
    spark.stop()


if __name__ == "__main__":
    main()
