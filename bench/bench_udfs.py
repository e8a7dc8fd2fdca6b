"""Benchmark: dmstore's Python UDFs against plain SQL doing the same job, on one connection
(medians of --repeats; results checked equal).

    python bench/bench_udfs.py            # 5,000 groups x 400 values; bootstrap over 10,000 values

  spearman     UDF over two lists per group  vs  SQL average ranks (the eval_metrics way)
  kendall_tau  UDF over two lists per group  vs  SQL pair self-join (on --kendall-groups groups)
  bootstrap_ci UDF, 1,000 resamples          vs  SQL resampling by an integer hash, 1,000 resamples
  mask_of      UDF from a list of ids        vs  SQL bitstring_agg over the ids
"""
from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from dmstore.engine import udfs
from timing import options, timed


def main():
    a = options(__doc__, groups=5000, size=400, kendall_groups=200, values=10000, repeats=3)
    rng = np.random.default_rng(0)
    con = duckdb.connect()
    udfs.register(con, d=50000)
    g = np.repeat(np.arange(a.groups), a.size)
    x = rng.integers(0, 50, g.size).astype(float)
    y = x + rng.normal(scale=20, size=g.size)
    con.register("t", pa.table({"g": g, "x": x, "y": y, "i": np.tile(np.arange(a.size), a.groups)}))
    rows = []

    def compare(name, udf_sql, sql, check):
        tu, ru = timed(lambda: con.sql(udf_sql).fetchall(), a.repeats)
        ts, rs = timed(lambda: con.sql(sql).fetchall(), a.repeats)
        ok = check(ru, rs)
        rows.append((name, tu, ts, ok))
        print(f"{name:<18} UDF {tu:7.3f} s   SQL {ts:7.3f} s   -> UDF {ts / tu:5.2f}x as fast"
              f"{'' if ok else '   (RESULTS DIFFER)'}", flush=True)

    close = lambda u, s: np.allclose(np.array(sorted(u), float), np.array(sorted(s), float), atol=1e-9)  # noqa: E731
    compare("spearman",
            "SELECT g, spearman(list(x ORDER BY i), list(y ORDER BY i)) FROM t GROUP BY g",
            """WITH r AS (SELECT g, (rank() OVER wx + round(cume_dist() OVER wx * count(*) OVER (PARTITION BY g))) / 2.0 AS rx,
                                (rank() OVER wy + round(cume_dist() OVER wy * count(*) OVER (PARTITION BY g))) / 2.0 AS ry
                         FROM t WINDOW wx AS (PARTITION BY g ORDER BY x), wy AS (PARTITION BY g ORDER BY y))
               SELECT g, corr(rx, ry) FROM r GROUP BY g""", close)
    k = a.kendall_groups
    for size in (a.size, 5 * a.size):   # the self-join grows with size², the UDF with size·log(size)
        gk = np.repeat(np.arange(k), size)
        xk = rng.integers(0, 50, gk.size).astype(float)
        con.register("tk", pa.table({"g": gk, "x": xk, "y": xk + rng.normal(scale=20, size=gk.size),
                                     "i": np.tile(np.arange(size), k)}))
        compare(f"kendall_tau n={size}",
                "SELECT g, kendall_tau(list(x ORDER BY i), list(y ORDER BY i)) FROM tk GROUP BY g",
                """WITH p AS (SELECT a.g, sign(a.x - b.x) AS sx, sign(a.y - b.y) AS sy
                              FROM tk AS a JOIN tk AS b ON a.g = b.g AND a.i < b.i)
                   SELECT g, sum(sx * sy) / sqrt(sum(abs(sx)) * sum(abs(sy))) FROM p GROUP BY g""", close)
    v = rng.normal(size=a.values)
    con.register("v", pa.table({"j": np.arange(a.values), "v": v}))
    n = a.values
    compare("bootstrap_ci",
            "SELECT ci.lo, ci.hi FROM (SELECT bootstrap_ci(list(v), 0.95, 1000, 0) AS ci FROM v)",
            f"""WITH draws AS (SELECT b.b, hash(b.b, d.d, 7) % {n} AS j
                              FROM range(1000) AS b(b), range({n}) AS d(d)),
                    means AS (SELECT draws.b, avg(v.v) AS m FROM draws JOIN v USING (j) GROUP BY draws.b)
               SELECT quantile_cont(m, 0.025), quantile_cont(m, 0.975) FROM means""",
            lambda u, s: abs(u[0][0] - s[0][0]) < 0.01 and abs(u[0][1] - s[0][1]) < 0.01)
    ids = np.sort(rng.choice(50000, 25000, replace=False))
    con.register("ids", pa.table({"id": ids.astype(np.int32)}))
    compare("mask_of",
            "SELECT mask_of(list(id)) FROM ids",
            "SELECT bitstring_agg(id, 0, 49999)::BLOB FROM ids",
            lambda u, s: u[0][0] == np.packbits(np.isin(np.arange(50000), ids)).tobytes() and len(s[0][0]) > 0)
    print("(the SQL bootstrap resamples by an integer hash, so its interval differs from the UDF's by sampling "
          "noise only; bitstring_agg's BIT carries a padding header, so only the UDF's bytes equal np.packbits)")


if __name__ == "__main__":
    main()
