"""Held-out evaluation (eval_predictions, eval_metrics, estimator_comparison) against numpy,
scipy and scikit-learn computed from the stored weights and margins."""
import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import roc_auc_score

from dmstore import Store
from dmstore.fit import fit

from dmstore.testing import alpha_masks

D, NT = 30, 5


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    rng = np.random.default_rng(11)
    root = tmp_path_factory.mktemp("ev") / "s"
    st = Store.create(root, train_size=D, test_size=NT)
    th = rng.normal(size=(D, NT)) * (rng.random((D, NT)) < 0.3)
    X = alpha_masks(rng, 400, D, 0.5)
    Y = X @ th + rng.normal(size=(400, NT)) + 0.3
    st.append("e", 0.5, X, Y, np.arange(D, D + NT), roles=["fit"] * 350 + ["val"] * 50)
    # eval models: 20 masks x 3 repeats (shared mask_id), outputs noisy around the truth
    Xe = np.repeat(alpha_masks(rng, 20, D, 0.5), 3, axis=0)
    Ye = Xe @ th + rng.normal(size=(60, NT)) + 0.3
    st.append("e", 0.5, Xe, Ye, np.arange(D, D + NT), roles="eval", mask_ids=np.repeat(np.arange(1000, 1020), 3))
    ids = [fit(st, "e", 0.5, estimator=e, n_lambdas=6, dtype="float64").fit_id
           for e in ("lasso", "diff_means", "diff_means_correct")]
    return st, Xe, Ye.astype(np.float32), ids


def _weights(con, fid):
    w = con.sql("SELECT target_id, train_id, weight FROM datamodels WHERE fit_id = $f", params={"f": fid}).fetchnumpy()
    b = con.sql("SELECT target_id, bias FROM fits WHERE fit_id = $f AND selected ORDER BY target_id",
                params={"f": fid}).fetchnumpy()
    W = np.zeros((D, NT))
    W[w["train_id"], w["target_id"] - D] = w["weight"]
    return W, b["bias"]


def test_eval_predictions_are_mask_dot_weights(evaluated):
    st, Xe, Ye, ids = evaluated
    con = st.connect()
    for fid in ids:
        W, b = _weights(con, fid)
        p = con.sql("SELECT model_id, target_id, predicted FROM eval_predictions WHERE fit_id = $f ORDER BY 1, 2",
                    params={"f": fid}).fetchnumpy()
        assert np.allclose(p["predicted"].reshape(60, NT), Xe @ W + b, atol=1e-5)


def test_eval_metrics_against_scipy(evaluated):
    st, Xe, Ye, ids = evaluated
    con = st.connect()
    for fid, correct in zip(ids, (False, False, True)):
        W, b = _weights(con, fid)
        P = (Xe @ W + b).astype(np.float32).astype(np.float64)
        A = (Ye > 0).astype(float) if correct else Ye.astype(np.float64)
        got = con.sql("SELECT * FROM eval_metrics WHERE fit_id = $f ORDER BY target_id", params={"f": fid}).fetchnumpy()
        for j in range(NT):
            assert got["n_models"][j] == 60 and got["n_masks"][j] == 20
            assert got["spearman"][j] == pytest.approx(spearmanr(P[:, j], A[:, j]).statistic, abs=1e-6)
            assert got["pearson"][j] == pytest.approx(pearsonr(P[:, j], A[:, j]).statistic, abs=1e-6)
            assert got["mse"][j] == pytest.approx(((P[:, j] - A[:, j]) ** 2).mean(), rel=1e-5)
            lab = Ye[:, j] > 0
            want_auc = roc_auc_score(lab, P[:, j]) if 0 < lab.sum() < 60 else None
            assert (got["auc"][j] is None or np.isnan(got["auc"][j])) if want_auc is None \
                else got["auc"][j] == pytest.approx(want_auc, abs=1e-9)
            Pm, Am = P[::3, j], A[:, j].reshape(20, 3).mean(1)   # averaged per mask
            assert got["spearman_mask_avg"][j] == pytest.approx(spearmanr(Pm, Am).statistic, abs=1e-6)
            assert got["pearson_mask_avg"][j] == pytest.approx(pearsonr(Pm, Am).statistic, abs=1e-6)


def test_estimator_comparison_aggregates(evaluated):
    st, Xe, Ye, ids = evaluated
    con = st.connect()
    agg = con.sql("SELECT * FROM estimator_comparison ORDER BY fit_id").fetchnumpy()
    assert agg["estimator"].tolist() == ["lasso", "diff_means", "diff_means_correct"]
    assert agg["n_eval_models"].tolist() == [60] * 3 and agg["n_targets"].tolist() == [NT] * 3
    per = con.sql("SELECT fit_id, avg(spearman) AS lds FROM eval_metrics GROUP BY 1 ORDER BY 1").fetchnumpy()
    assert np.allclose(agg["lds"], per["lds"])
    W, b = _weights(con, ids[0])
    P = (Xe @ W + b).astype(np.float32).ravel()
    assert agg["pooled_pearson"][0] == pytest.approx(pearsonr(P, Ye.ravel()).statistic, abs=1e-6)
    # on this linear data the LASSO datamodel predicts held-out margins well
    assert agg["lds"][0] > 0.5


def test_eval_scatter_sample(evaluated):
    st, Xe, Ye, ids = evaluated
    con = st.connect()
    got = con.sql("SELECT * FROM eval_scatter($f, 25)", params={"f": ids[0]}).fetchnumpy()
    assert len(got["model_id"]) == 25 and len(set(zip(got["model_id"], got["target_id"]))) == 25
    mids = st.model_ids("e", 0.5, "eval")
    rows = np.searchsorted(mids, got["model_id"])
    assert np.array_equal(got["margin"], Ye[rows, got["target_id"] - D])
    again = con.sql("SELECT * FROM eval_scatter($f, 25)", params={"f": ids[0]}).fetchnumpy()
    assert np.array_equal(again["model_id"], got["model_id"])  # reproducible
