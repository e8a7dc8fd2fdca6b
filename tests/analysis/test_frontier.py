"""The cost-quality frontier: on a synthetic linear store where the true weights are known, LASSO's
held-out LDS and its recovery of the truth rise with the models it uses; the table's numbers are
estimator_comparison's and the store's training log's; the CLI prints it and refuses bad shares."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from dmstore import Store
from dmstore.analysis.frontier import default_shares, frontier, train_rate
from dmstore.cli import cli
from dmstore.errors import InputError
from dmstore.storage import log
from dmstore.testing import datamodel_data
from dmstore.train import train

SHARES = (60, 120, 250, 500, 1000)


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    d, n = 80, 10
    X, Y, theta = datamodel_data(m=1200, d=d, n=n, density=0.1, r2=0.6, seed=3)
    st = Store.create(tmp_path_factory.mktemp("fr") / "s", train_size=d, test_size=n)
    roles = np.array(["fit"] * 1000 + ["eval"] * 200, dtype=object)
    st.append("lin", 0.5, X, Y, np.arange(d, d + n), roles=roles)
    out = frontier(st, "lin", 0.5, SHARES, ("lasso", "diff_means"), n_lambdas=8, progress=False)
    return st, out, theta


def test_lasso_gets_better_with_models(linear):
    st, out, theta = linear
    rows = [r for r in out["rows"] if r["estimator"] == "lasso"]
    assert [r["models_used"] for r in rows] == list(SHARES)
    lds = [r["lds"] for r in rows]
    assert lds[-1] > lds[0] + 0.05 and np.corrcoef(np.log(SHARES), lds)[0, 1] > 0.8 and lds == sorted(lds)
    # the truth: the fitted weights approach the true ones as the share grows
    con = st.connect()
    err = []
    for n in SHARES:
        f = out["fits"][("lasso", n)]
        W = np.zeros_like(theta)
        for t, i, w in con.execute(f"SELECT target_id, train_id, weight FROM dm_weights({f})").fetchall():
            W[i, t - theta.shape[0]] = w
        err.append(np.linalg.norm(W - theta) / np.linalg.norm(theta))
    assert err[-1] < 0.6 * err[0] and err == sorted(err, reverse=True)


def test_rows_are_the_comparison_and_the_fits_are_reused(linear):
    st, out, _ = linear
    con = st.connect()
    comp = {r[0]: r[1] for r in con.execute("SELECT fit_id, lds FROM estimator_comparison").fetchall()}
    assert {r["fit_id"] for r in out["rows"]} == set(comp) and len(comp) == 2 * len(SHARES)
    for r in out["rows"]:
        assert r["lds"] == pytest.approx(comp[r["fit_id"]])
        assert r["kind"] == "regression" and r["train_s"] is None and r["compute_s"] is None   # appended, not trained
    assert out["train_s_per_model"] is None
    n_runs = con.execute("SELECT count(*) FROM fit_runs").fetchall()[0][0]
    again = frontier(st, "lin", 0.5, SHARES[:2], ("lasso",), n_lambdas=8, progress=False)
    assert again["fits"][("lasso", 60)] == out["fits"][("lasso", 60)]
    assert st.connect().execute("SELECT count(*) FROM fit_runs").fetchall()[0][0] == n_runs
    with pytest.raises(InputError, match="has 1000 fit \\+ val models"):
        frontier(st, "lin", 0.5, (100, 2000), ("diff_means",), progress=False)
    assert default_shares(1000) == [250, 500, 1000] and default_shares(200) == [200]


def test_report_draws_the_frontier(linear, tmp_path):
    from dmstore.analysis.report import build_report
    st, out, _ = linear
    page = open(build_report(st, out["fits"][("lasso", 1000)], tmp_path / "r.html")).read()
    i = page.index("<h2>Cost–quality frontier</h2>")
    assert page[i:].split("<h2>")[1].count("<img ") == 1 and "nested share" in page


def test_cli_with_the_training_rate(tmp_path):
    root = tmp_path / "s"
    train(root, "tests.train.test_train:TINY", models=60, batch=30, progress=False)
    train(root, "tests.train.test_train:TINY", models=20, batch=20, role="eval", progress=False)
    res = CliRunner().invoke(cli, ["frontier", str(root), "--experiment", "tiny", "--alpha", "0.5", "--models", "20,40,60",
                                   "--estimators", "diff_means", "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    secs = added = 0
    for c in log.history(root):
        info = json.loads(c["info"])
        if info.get("source", "").endswith(":fit"):
            secs, added = secs + info["train_seconds"], added + info["added"]
    rate = secs / added
    assert out["train_s_per_model"] == pytest.approx(rate) == pytest.approx(train_rate(Store.open(root), "tiny", 0.5))
    rows = out["rows"]
    assert [r["models_used"] for r in rows] == [20, 40, 60]
    for r in rows:
        assert r["compute_s"] == pytest.approx(r["fit_s"] + r["models_used"] * rate)
    table = CliRunner().invoke(cli, ["frontier", str(root), "--experiment", "tiny", "--alpha", "0.5", "--models",
                                     "20,40,60", "--estimators", "diff_means"])
    assert table.exit_code == 0 and "s to train a model" in table.output and "diff_means" in table.output
    bad = CliRunner().invoke(cli, ["frontier", str(root), "--experiment", "tiny", "--alpha", "0.5", "--models", "500"])
    assert bad.exit_code == 1 and "fewer than 500" in bad.output
    assert CliRunner().invoke(cli, ["frontier", str(root), "--experiment", "tiny", "--alpha", "0.5",
                                    "--estimators", "nope"]).exit_code == 2
