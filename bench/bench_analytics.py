"""Benchmark: SQL analytics vs hand-written numpy, on a store with n=10,000 targets x d=50,000
train examples, 2 % non-zero weights (10 M weight rows) and 2,000 eval models.

    python bench/bench_analytics.py            # the full size (needs ~6 GB of RAM, a few minutes)
    python bench/bench_analytics.py --quick

Each analytic is timed (median of --repeats) beside the equivalent numpy in the same run; the
results are checked equal. Goal: every analytic within 3x of numpy.
  top-10 neighbours for all targets      topk_neighbors(fit, 10)
  10,000 removal sets of 100 examples    dm_removal_effect(fit, 'removals')
  estimator comparison                   eval_metrics (Spearman, Pearson, MSE, AUC per target)
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa

sys.path.insert(0, os.path.dirname(__file__))
from dmstore.testing import block_masks as make_masks  # noqa: E402
from timing import options, timed  # noqa: E402

from dmstore import Store  # noqa: E402
from dmstore.storage import paths as L  # noqa: E402
from dmstore.storage.schema import arrow_schema  # noqa: E402
from dmstore.store.commit import commit_unit  # noqa: E402


def build(root, n, d, density, n_eval, seed=0):
    """A store holding eval models and one synthetic fit (weights, fits, eval predictions)."""
    rng = np.random.default_rng(seed)
    st = Store.create(root, train_size=d, test_size=n)
    targets = np.arange(d, d + n, dtype=np.int32)
    nnz_per = int(density * d)
    # weights: nnz_per distinct train ids per target
    train_ids = np.sort(np.argsort(rng.random((n, d), dtype=np.float32), axis=1)[:, :nnz_per], axis=1) \
        if n * d <= 2e8 else np.sort(np.stack([rng.choice(d, nnz_per, replace=False) for _ in range(n)]), axis=1)
    weights = rng.standard_t(3, size=(n, nnz_per)).astype(np.float32) * 0.05
    bias = rng.normal(2, 0.5, n)
    X = make_masks(rng, n_eval, d, 0.5)
    # predictions = mask · θ + b, computed sparsely per target; margins = predictions + noise
    P = np.empty((n_eval, n), np.float32)
    for j in range(n):
        P[:, j] = X[:, train_ids[j]].astype(np.float32) @ weights[j] + bias[j]
    Y = (P + rng.normal(scale=1.0, size=P.shape)).astype(np.float32)
    for lo in range(0, n_eval, 200):
        st.append("bench", 0.5, X[lo:lo + 200], Y[lo:lo + 200], targets, roles="eval")
    tables = {}
    nz = n * nnz_per
    tables["weights"] = (pa.table({"fit_id": np.ones(nz, np.int64), "target_id": np.repeat(targets, nnz_per),
                                    "lam": np.full(nz, 0.01), "train_id": train_ids.ravel().astype(np.int32),
                                    "weight": weights.ravel()}))
    tables["fits"] = (pa.table({
        "fit_id": np.ones(n, np.int64), "experiment": ["bench"] * n, "alpha": np.full(n, 0.5),
        "estimator": ["lasso"] * n, "target_id": targets, "lam": np.full(n, 0.01), "bias": bias,
        "train_mse": np.ones(n), "val_mse": np.ones(n), "nnz": np.full(n, nnz_per, np.int32),
        "selected": np.ones(n, bool), "n_models": np.full(n, 1000, np.int64), "rel_gap": np.zeros(n),
        "n_iter": np.ones(n, np.int32), "converged": np.ones(n, bool)}))
    mids = st.model_ids("bench", 0.5, "eval")
    tables["eval_predictions"] = (pa.table({"fit_id": np.ones(n_eval * n, np.int64),
                                             "model_id": np.repeat(mids, n), "target_id": np.tile(targets, n_eval),
                                             "predicted": P.ravel()}))
    run = {f.name: [None] for f in arrow_schema("fit_runs")}
    run.update(fit_id=[1], experiment=["bench"], alpha=[0.5], estimator=["lasso"], created_at=["-"], n_fit=[0],
               n_val=[0], val_source=["role"], n_targets=[n], n_lambdas=[1], dtype=["float32"], device=["cpu"],
               wall_time_s=[0.0], n_not_converged=[0], params=["{}"])
    tables["fit_runs"] = pa.table(run, schema=arrow_schema("fit_runs"))
    commit_unit(st, L.FITS, tables, "fit", {"fit_id": 1})
    return st, targets, train_ids, weights, P, Y


def numpy_topk(train_ids, weights, k):
    """Per target: top-k positive and top-k negative train ids by weight."""
    pos_w = np.where(weights > 0, weights, -np.inf)
    idx = np.argpartition(-pos_w, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(-pos_w, idx, 1).argsort(1, kind="stable")
    top = np.take_along_axis(idx, order, 1)
    neg_w = np.where(weights < 0, weights, np.inf)
    idx2 = np.argpartition(neg_w, k - 1, axis=1)[:, :k]
    bot = np.take_along_axis(idx2, np.take_along_axis(neg_w, idx2, 1).argsort(1, kind="stable"), 1)
    return np.take_along_axis(train_ids, top, 1), np.take_along_axis(train_ids, bot, 1)


def numpy_removal(train_ids, weights, d, rem_t, rem_i, n_sets, size):
    keys = (np.arange(train_ids.shape[0])[:, None] * d + train_ids).ravel()   # sorted
    flat = weights.ravel()
    q = rem_t.astype(np.int64) * d + rem_i
    pos = np.searchsorted(keys, q)
    pos = np.minimum(pos, keys.size - 1)
    hit = keys[pos] == q
    vals = np.where(hit, flat[pos], 0.0)
    return vals.reshape(n_sets, size).sum(1)


def numpy_metrics(P, Y):
    from scipy.stats import rankdata

    def ranks(A):
        return rankdata(A, axis=0, method="average")  # float32 predictions do tie

    def corr(a, b):
        a = a - a.mean(0)
        b = b - b.mean(0)
        return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))
    rp, ry = ranks(P.astype(np.float64)), ranks(Y.astype(np.float64))
    spearman = corr(rp, ry)
    pearson = corr(P.astype(np.float64), Y.astype(np.float64))
    mse = ((P.astype(np.float64) - Y) ** 2).mean(0)
    pos = Y > 0
    n1 = pos.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((rp * pos).sum(0) - n1 * (n1 + 1) / 2) / (n1 * (len(Y) - n1))
    return spearman, pearson, mse, auc


def main():
    a = options(__doc__, quick=dict(n=1000, d=5000, eval=300, sets=1000), n=10000, d=50000, density=0.02,
                eval=2000, sets=10000, set_size=100, repeats=3)
    t0 = time.time()
    st, targets, train_ids, weights, P, Y = build(os.path.join(tempfile.mkdtemp(), "s"), a.n, a.d, a.density, a.eval)
    print(f"store: n={a.n} targets x d={a.d}, {train_ids.size:,} weights, {a.eval} eval models "
          f"(built in {time.time() - t0:.0f} s)")
    con = st.connect()
    res = []

    # 1. top-10 neighbours for all targets
    t_sql, got = timed(lambda: con.sql("SELECT target_id, direction, rank, train_id FROM topk_neighbors(1, 10)")
                       .fetchnumpy(), a.repeats)
    t_np, (top, bot) = timed(lambda: numpy_topk(train_ids, weights, 10), a.repeats)
    pos = got["direction"] == "positive"
    sql_top = got["train_id"][pos].reshape(a.n, -1)
    assert np.array_equal(sql_top, top[:, : sql_top.shape[1]]), "top-k differs from numpy"
    res.append(("top-10 neighbours, all targets", t_sql, t_np))

    # 2. counterfactual predictions for removal sets
    rng = np.random.default_rng(1)
    rem_t = np.repeat(rng.choice(targets, a.sets), a.set_size)
    rem_i = np.concatenate([rng.choice(a.d, a.set_size, replace=False) for _ in range(a.sets)]).astype(np.int32)
    removals = pa.table({"set_id": np.repeat(np.arange(a.sets), a.set_size), "target_id": rem_t, "train_id": rem_i})
    con.register("removals", removals)
    t_sql, got = timed(lambda: con.sql("SELECT set_id, predicted_effect FROM dm_removal_effect(1, 'removals')")
                       .fetchnumpy(), a.repeats)
    t_np, want = timed(lambda: numpy_removal(train_ids, weights, a.d, rem_t - a.d, rem_i, a.sets, a.set_size), a.repeats)
    assert np.allclose(got["predicted_effect"], want, atol=1e-4), "removal effects differ from numpy"
    res.append((f"{a.sets:,} removal sets of {a.set_size}", t_sql, t_np))

    # 3. estimator comparison on eval models
    t_sql, got = timed(lambda: con.sql("SELECT target_id, spearman, pearson, mse, auc FROM eval_metrics "
                                       "ORDER BY target_id").fetchnumpy(), a.repeats)
    t_np, (sp, pe, mse, auc) = timed(lambda: numpy_metrics(P, Y), a.repeats)
    sql_auc = np.array([np.nan if v is None else v for v in got["auc"].tolist()], dtype=float)
    assert np.allclose(got["spearman"], sp, atol=1e-6), "Spearman differs from numpy"
    assert np.allclose(sql_auc, auc, atol=1e-6, equal_nan=True), "AUC differs from numpy"
    res.append(("estimator comparison (per-target metrics)", t_sql, t_np))

    for name, ts, tn in res:
        print(f"{name:<44} SQL {ts:7.2f} s   numpy {tn:7.2f} s   ratio {ts / tn:5.1f}x (goal <= 3x)")


if __name__ == "__main__":
    main()
