"""Every analysis that retrains works for an ingested attribution fit: `counterfactual --fit F`
and `support --fit F` retrain without each method's top-k (appendix F.4), side by side with a
datamodel fit, and `embed` runs on its weights."""
import numpy as np
import pytest
from click.testing import CliRunner

import dmstore
from dmstore import Store
from dmstore.cli import cli
from dmstore.fit import fit
from dmstore.storage.parquet import decode_ranges
from dmstore.train import train
from tests.train.test_train import TINY


def test_counterfactuals_of_an_ingested_fit_beside_a_datamodel(tmp_path):
    root = tmp_path / "s"
    train(root, "tests.train.test_train:TINY", models=300, batch=300)
    train(root, "tests.train.test_train:TINY", models=40, batch=40, role="eval")
    st = Store.open(root, "a")
    lasso = fit(st, "tiny", 0.5, targets="test", n_lambdas=5, lambda_min_ratio=1e-4, dtype="float64").fit_id
    np.save(tmp_path / "truth.npy", TINY.theta[:, 10:].astype(np.float32))        # train-major [d, n]
    r = CliRunner().invoke(cli, ["ingest", "scores", str(root), str(tmp_path / "truth.npy"), "--name", "oracle",
                                 "--experiment", "tiny", "--alpha", "0.5", "--layout", "train-major"])
    assert r.exit_code == 0, r.output
    import re
    oracle = int(re.search(r"fit (\d+): oracle", r.output).group(1))
    for fid in (lasso, oracle):
        r = CliRunner().invoke(cli, ["counterfactual", str(root), "--fit", str(fid), "--targets", "10,11",
                                     "--k", "1,2,3", "--selectors", "top", "--trials", "1"])
        assert r.exit_code == 0, r.output
    con = dmstore.connect(root)
    rows = con.sql("SELECT fit_id, target_id, k, removed, predicted_effect, actual_effect FROM counterfactuals "
                   "ORDER BY fit_id, target_id, k").fetchall()
    assert {r[0] for r in rows} == {lasso, oracle}
    for fid, t, k, removed, pred, act in rows:
        ids = decode_ranges(removed)
        assert act == pytest.approx(TINY.theta[ids, t].sum(), abs=0.01)          # the recipe is linear
        if fid == oracle:   # the oracle's top-k are the true largest weights; calibrated ≈ scale 1
            top = np.argsort(-TINY.theta[:, t])[:k]
            assert sorted(ids.tolist()) == sorted(int(i) for i in top if TINY.theta[i, t] > 0)
            assert pred == pytest.approx(act, abs=0.02)
    r = CliRunner().invoke(cli, ["support", str(root), "--fit", str(oracle), "--targets", "10,11", "--k", "1,2,4",
                                 "--trials", "1"])
    assert r.exit_code == 0 and "2 targets" in r.output, r.output
    comp = dict(con.sql("SELECT estimator, lds FROM estimator_comparison").fetchall())
    assert comp["oracle"] > 0.99 and set(comp) == {"lasso", "oracle"}
    # the report's method table and figure F.4 show both methods
    from dmstore.analysis.report import build_report
    page = open(build_report(Store.open(root), lasso, tmp_path / "r.html")).read()
    assert "<td>oracle</td><td>attribution</td>" in page and "<td>lasso</td><td>regression</td>" in page
    assert "figure F.4" in page and "top-k examples: lasso, oracle" in page
