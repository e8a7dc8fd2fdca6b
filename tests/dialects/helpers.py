"""Comparing Spark's rows with DuckDB's, and the analytic calls both engines run."""
import decimal
import math

import numpy as np

from .linear import D


def _norm(v):
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    if isinstance(v, (list, tuple, np.ndarray)):
        return tuple(_norm(x) for x in v)
    return v


def _key(row):
    return tuple((0, "") if v is None else (1, round(v, 4)) if isinstance(v, float) else (1, str(v))
                 for v in row)


def assert_same_rows(duck_cols, duck_rows, spark_df, what):
    assert [c.lower() for c in spark_df.columns] == [c.lower() for c in duck_cols], what
    got = sorted((tuple(_norm(v) for v in r) for r in spark_df.collect()), key=_key)
    want = sorted((tuple(_norm(v) for v in r) for r in duck_rows), key=_key)
    assert len(got) == len(want), f"{what}: {len(got)} rows in Spark, {len(want)} in DuckDB"
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            if isinstance(b, float) or isinstance(a, float):
                assert a is not None and b is not None and (math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
                                                             or (math.isnan(a) and math.isnan(b))), (what, g, w)
            elif isinstance(b, tuple) and b and isinstance(b[0], float):
                assert np.allclose(a, b, rtol=1e-6), (what, g, w)
            else:
                assert a == b, (what, g, w)


def _duck(con, sql, params=None):
    rel = con.sql(sql, params=params)
    return rel.columns, rel.fetchall()


def _calls(st, lasso, dm, removals_path, spark=None):
    """analytic → list of (params, Spark keyword arguments) (no Spark: removals is None)."""
    lam = st.connect().sql("SELECT lam FROM fits WHERE fit_id = $f AND NOT selected ORDER BY lam LIMIT 1 OFFSET 2",
                           params={"f": lasso}).fetchall()[0][0]
    mask = np.packbits(np.arange(D) % 3 == 0).tobytes()
    rem = spark.read.parquet(str(removals_path)) if spark is not None else None
    return {
        "dm_weights": [({"fit": lasso}, {}), ({"fit": lasso, "lam": lam}, {})],
        "topk_neighbors": [({"fit": lasso, "k": 3}, {}), ({"fit": lasso, "k": 2, "lam": lam}, {}),
                           ({"fit": dm, "k": 4}, {})],
        "neighbor_label_agreement": [({"fit": lasso, "k": 3}, {})],
        "neighbor_features": [({"fit": lasso, "k": 2, "n_targets": 3}, {})],
        "leakage": [({"fit": lasso, "k": 3}, {})],
        "leakage_targets": [({"fit": lasso}, {})],
        "leakage_recall": [({"fit": lasso, "k": 3}, {}), ({"fit": dm, "k": 1}, {})],
        "leakage_recall_nn": [({"fit": lasso, "k": 3}, {})],
        "data_support": [({"fit": lasso}, {}), ({"fit": dm}, {}), ({"fit": lasso, "lam": lam}, {})],
        "data_support_cdf": [({"fit": lasso}, {})],
        "dm_removal_effect": [({"fit": lasso, "removals": "removals"}, {"removals": rem}),
                              ({"fit": lasso, "removals": "removals", "alpha": 0.25}, {"removals": rem})],
        "dm_predict": [({"fit": lasso, "target": D + 1, "mask": mask}, {}),
                       ({"fit": lasso, "target": 0, "mask": mask}, {})],   # not a target: NULL
        "eval_scatter": [({"fit": lasso, "n": 25}, {})],
        "frontier": [({"experiment_name": "lin", "alpha_value": 0.5, "train_s_per_model": 0.01}, {}),
                     ({"experiment_name": "lin", "alpha_value": 0.5}, {})],
    }


def _duck_call(con, a, params):
    """Call DuckDB macro `a`: required parameters by position, optional ones by name."""
    parts = []
    for p, default in a.params:
        if p in params:
            val = f"'{params[p]}'" if p in a.table_params else f"${p}"
            parts.append(val if default is None else f"{p} := {val}")
    bind = {p: v for p, v in params.items() if p not in a.table_params}
    if a.kind == "macro":
        return _duck(con, f"SELECT {a.name}({', '.join(parts)}) AS {a.name}", bind)
    return _duck(con, f"SELECT * FROM {a.name}({', '.join(parts)})", bind)
