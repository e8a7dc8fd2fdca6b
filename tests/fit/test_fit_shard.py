"""`fit --shard K/N --run NAME`: N shard processes at once form one fit equal to the unsharded
fit (fits, weights, eval predictions, metrics), committed shard by shard, pinned to one store
version, resumable, and refusing a shard with other settings."""
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from dmstore import InputError, Store
from dmstore.cli import cli
from dmstore.fit import fit

from dmstore.testing import Synth

ARGS = ["--experiment", "exp", "--alpha", "0.5", "--targets", "all", "--lambdas", "5", "--dtype", "float64",
        "--tol", "1e-10", "--max-iter", "20000", "--keep-path"]


@pytest.fixture
def st(tmp_path):
    s = Synth(m=120, d=30, n_test=10, seed=3)
    store = Store.create(tmp_path / "s", train_size=s.d, test_size=s.n_test)
    roles = np.array(["fit"] * 80 + ["val"] * 20 + ["eval"] * 20, dtype=object)
    store.append("exp", 0.5, s.masks, s.margins, s.targets, seeds=s.seeds, roles=roles)
    return store


def _rows(con, sql, fid):
    return con.sql(sql, params={"f": fid}).fetchall()


def test_three_shard_processes_form_the_unsharded_fit(st):
    whole = fit(st, "exp", 0.5, targets="all", n_lambdas=5, dtype="float64", keep_path=True, progress=False,
                tol=1e-10, max_iter=20000).fit_id
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                                        os.environ.get("PYTHONPATH", "")]))
    procs = [subprocess.Popen([sys.executable, "-m", "dmstore", "-q", "fit", str(st.root), *ARGS,
                               "--shard", f"{k}/3", "--run", "r1"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for k in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    con = Store.open(st.root).connect()
    runs = con.sql("SELECT fit_id, n_targets, params FROM fit_runs ORDER BY fit_id").fetchall()
    assert len(runs) == 2 and runs[0][0] == whole and runs[1][1] == runs[0][1] == 40   # one row per fit
    sharded = runs[1][0]
    assert '"run": "r1"' in runs[1][2] and '"n_shards": 3' in runs[1][2]
    q = "SELECT target_id, lam, selected, nnz, n_models, bias FROM fits WHERE fit_id = $f ORDER BY target_id, lam"
    a, b = _rows(con, q, whole), _rows(con, q, sharded)
    assert len(a) == len(b) == 40 * 5
    assert [(r[0], r[2], r[4]) for r in a] == [(r[0], r[2], r[4]) for r in b]   # same choices
    assert np.allclose([r[1] for r in a], [r[1] for r in b], rtol=1e-12, atol=0)          # same λ path
    # The weights themselves need not be unique: masks of exactly αd ones make H singular along
    # the ones, and where every feature is in the support with as many positive as negative
    # weights, moving along the ones leaves the objective flat (bias and weights move, every
    # model's prediction does not; measured: a bias 0.10 apart, both gaps below 1e-12). So each
    # (target, λ)'s predictions on every mask of the store are compared: the identified quantity.
    # They depend on which targets share a block only through the solver's stopping point and
    # BLAS blocking (~3e-6 here, at a duality-gap tolerance of 1e-10).
    q = "SELECT target_id, lam, train_id, weight FROM weights WHERE fit_id = $f ORDER BY target_id, lam, train_id"
    masks = Synth(m=120, d=30, n_test=10, seed=3).masks.astype(np.float64)
    preds = []
    for rows, f in ((a, whole), (b, sharded)):
        k = {(r[0], r[1]): i for i, r in enumerate(rows)}
        W = np.zeros((len(rows), 30))
        for t, lam, j, w in _rows(con, q, f):
            W[k[(t, lam)], j] = w
        preds.append(masks @ W.T + np.array([r[5] for r in rows]))
    assert len(_rows(con, q, whole)) > 100
    np.testing.assert_allclose(preds[0], preds[1], rtol=1e-5, atol=1e-5)
    q = "SELECT model_id, target_id, predicted FROM eval_predictions WHERE fit_id = $f ORDER BY model_id, target_id"
    pa_, pb = _rows(con, q, whole), _rows(con, q, sharded)
    assert [r[:2] for r in pa_] == [r[:2] for r in pb] and len(pa_) == 20 * 40
    assert np.allclose([r[2] for r in pa_], [r[2] for r in pb], rtol=1e-5, atol=1e-5)
    cmp = con.sql("SELECT fit_id, n_targets, lds FROM estimator_comparison ORDER BY fit_id").fetchall()
    assert [c[1] for c in cmp] == [40, 40] and cmp[0][2] == pytest.approx(cmp[1][2], abs=1e-6)
    # a rerun of a committed shard does nothing; other settings for the same run are refused
    res = CliRunner().invoke(cli, ["-q", "fit", str(st.root), *ARGS, "--shard", "1/3", "--run", "r1"])
    assert res.exit_code == 0 and "already committed" in res.output, res.output
    res = CliRunner().invoke(cli, ["-q", "fit", str(st.root), *ARGS[:-1], "--shard", "1/3", "--run", "r1"])   # no --keep-path
    assert res.exit_code == 1 and "other settings (keep_path" in res.output, res.output
    res = CliRunner().invoke(cli, ["-q", "fit", str(st.root), *ARGS, "--shard", "1/4", "--run", "r1"])
    assert res.exit_code == 1 and "has 3 shards" in res.output
    for bad in (["--shard", "3/3", "--run", "x"], ["--shard", "1/3"], ["--run", "x"], ["--shard", "a/b", "--run", "x"]):
        res = CliRunner().invoke(cli, ["-q", "fit", str(st.root), *ARGS, *bad])
        assert res.exit_code == 2, (bad, res.output)


def test_a_run_is_pinned_visible_when_complete_and_its_id_is_reserved(st):
    s = Synth(m=40, d=30, n_test=10, seed=9)
    first = fit(st, "exp", 0.5, targets="test", n_lambdas=3, shard=(0, 2), run="r2", progress=False)
    con = Store.open(st.root).connect()
    assert con.sql("SELECT count(*) FROM fit_runs").fetchall() == [(0,)]             # not complete yet
    assert con.sql("SELECT count(DISTINCT target_id) FROM fits").fetchall() == [(5,)]  # half the targets
    # models trained meanwhile, and another fit committed meanwhile, change nothing of the run
    st.append("exp", 0.5, s.masks, s.margins, s.targets, seeds=s.seeds, roles=["fit"] * 40)
    other = fit(st, "exp", 0.5, estimator="diff_means", progress=False).fit_id
    assert other != first.fit_id
    second = fit(st, "exp", 0.5, targets="test", n_lambdas=3, shard=(1, 2), run="r2", progress=False)
    assert second.fit_id == first.fit_id
    con = Store.open(st.root).connect()
    rows = con.sql("SELECT fit_id, n_fit, n_targets FROM fit_runs ORDER BY fit_id").fetchall()
    assert rows == sorted([(first.fit_id, 80, 10), (other, 120, 10)])
    assert con.sql("SELECT DISTINCT n_models FROM fits WHERE fit_id = $f AND NOT selected",
                   params={"f": first.fit_id}).fetchall() == [(80,)]    # both shards: the run's version
    with pytest.raises(InputError, match="go together"):
        fit(st, "exp", 0.5, shard=(0, 2))
    with pytest.raises(InputError, match="^run 'bad name/..': use letters"):
        fit(st, "exp", 0.5, shard=(0, 2), run="bad name/..")
    r = CliRunner().invoke(cli, ["fit", str(st.root), *ARGS, "--shard", "0/2", "--run", "bad name/.."])
    assert r.exit_code == 1 and r.output.startswith("Error: --run 'bad name/..': use letters"), r.output


def test_racing_fits_and_a_run_never_share_a_fit_id(st):
    """Three plain fits and the two shards of a run, five processes started together: four
    distinct fit ids (the run's shards share one), each fit complete, nothing half-written."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                                        os.environ.get("PYTHONPATH", "")]))
    base = ["-q", "fit", str(st.root), "--experiment", "exp", "--alpha", "0.5", "--lambdas", "3"]
    cmds = [base + ["--estimator", e] for e in ("diff_means", "ols", "lasso")]
    cmds += [base + ["--shard", f"{k}/2", "--run", "race"] for k in range(2)]
    procs = [subprocess.Popen([sys.executable, "-m", "dmstore", *c], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for c in cmds]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    con = Store.open(st.root).connect()
    runs = con.sql("SELECT fit_id, estimator, n_targets FROM fit_runs ORDER BY fit_id").fetchall()
    assert len(runs) == 4 and len({r[0] for r in runs}) == 4 and all(r[2] == 10 for r in runs)
    per_fit = con.sql("SELECT fit_id, count(DISTINCT target_id) FROM fits GROUP BY 1 ORDER BY 1").fetchall()
    assert per_fit == [(r[0], 10) for r in runs]


def test_a_shard_retried_after_a_conflict_writes_all_its_weights(st, monkeypatch):
    """A shard's commit that conflicts (another shard committed meanwhile) is written again: its
    weights too (a consumed stream once wrote the retried unit with no weights, fits intact)."""
    from dmstore.errors import CommitConflict
    from dmstore.storage import log
    real, calls = log.commit, []

    def conflict_once(base, operation, *a, **kw):
        calls.append(operation)
        if len(calls) == 1:
            raise CommitConflict("another shard committed meanwhile (injected)")
        return real(base, operation, *a, **kw)
    kw = dict(targets="test", n_lambdas=3, progress=False)
    whole = fit(st, "exp", 0.5, **kw).fit_id
    monkeypatch.setattr(log, "commit", conflict_once)
    sharded = fit(st, "exp", 0.5, shard=(0, 1), run="retried", **kw).fit_id
    assert len(calls) == 2
    con = Store.open(st.root).connect()
    q = "SELECT target_id, lam, train_id, weight FROM weights WHERE fit_id = $f ORDER BY ALL"
    a, b = _rows(con, q, whole), _rows(con, q, sharded)
    assert len(a) > 50 and [r[:3] for r in a] == [r[:3] for r in b]
    assert np.allclose([r[3] for r in a], [r[3] for r in b], rtol=1e-5, atol=1e-6)
