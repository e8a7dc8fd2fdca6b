"""Retraining for counterfactuals and support: chunks over several worker processes give the
same models as one, a run interrupted before its commit is resumed from the chunks it kept
(training only what is missing), the cache is gone after the commit, and the model count and
time estimate (from the training rate the store recorded) come before the work."""
import numpy as np
import pytest

import dmstore
from dmstore import Store
from dmstore.analysis import counterfactual, support
from dmstore.analysis import retrain as R
from dmstore.storage import paths as P
from dmstore.fit import fit
from dmstore.train import train
from tests.train.test_train import TinyLinear

SPEC = "tests.train.test_train:TINY"


@pytest.fixture()
def store(tmp_path):
    root = tmp_path / "s"
    train(root, SPEC, models=200, batch=100)
    st = Store.open(root, "a")
    fid = fit(st, "tiny", 0.5, targets="test", n_lambdas=4, lambda_min_ratio=1e-3, dtype="float64").fit_id
    return st, fid


def rows(st):
    return dmstore.connect(st).sql("SELECT target_id, selector, k, actual_effect, predicted_effect FROM "
                                   "counterfactuals ORDER BY ALL").fetchall()


def test_workers_and_chunks_give_the_same_models(store, tmp_path, monkeypatch):
    st, fid = store
    lines = []
    counterfactual(st, fid, targets=[10, 11], ks=(1, 2, 3), trials=3, workers=2, echo=lines.append)
    two = rows(st)
    assert len(two) == 18
    assert lines and "full-data models" in lines[0] and "models/min per process" in lines[0], lines
    assert not any((st.root / P.RETRAIN).iterdir())              # forgotten after the commit
    other = tmp_path / "o"
    train(other, SPEC, models=200, batch=100)
    so = Store.open(other, "a")
    fid2 = fit(so, "tiny", 0.5, targets="test", n_lambdas=4, lambda_min_ratio=1e-3, dtype="float64").fit_id
    monkeypatch.setattr(R, "CHUNK", 2)                         # many small chunks, inline
    counterfactual(so, fid2, targets=[10, 11], ks=(1, 2, 3), trials=3, workers=1)
    assert rows(so) == two


def test_an_interrupted_run_resumes_from_its_chunks(store, monkeypatch):
    st, fid = store
    calls = []
    orig = TinyLinear.train

    def counting(self, masks, seeds):
        calls.append(len(seeds))
        return orig(self, masks, seeds)
    monkeypatch.setattr(TinyLinear, "train", counting)
    monkeypatch.setattr(R, "CHUNK", 4)
    import sys
    S = sys.modules["dmstore.analysis.support"]

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(S, "commit_analysis", interrupted)
    with pytest.raises(KeyboardInterrupt):
        support(st, fid, targets=[10, 12], ks=(1, 2, 4), trials=2)
    trained = sum(calls)
    kept = sorted((st.root / P.RETRAIN).glob("*.npy"))
    assert trained > 0 and kept
    assert dmstore.connect(st).sql("SELECT count(*) FROM support").fetchall() == [(0,)]   # nothing committed
    kept[0].unlink()                                           # as if killed while that chunk trained
    monkeypatch.undo()
    monkeypatch.setattr(TinyLinear, "train", counting)
    monkeypatch.setattr(R, "CHUNK", 4)
    calls.clear()
    lines = []
    r = support(st, fid, targets=[10, 12], ks=(1, 2, 4), trials=2, echo=lines.append)
    assert 0 < sum(calls) <= 4                                 # only the missing chunk was trained
    assert any("kept from an interrupted run" in line for line in lines), lines
    assert r["n"] == 2 and not list((st.root / P.RETRAIN).glob("*.npy"))
    got = dmstore.connect(st).sql("SELECT target_id, support, k_hat FROM support ORDER BY 1").fetchall()
    # the same as a run never interrupted, on a store built the same way
    other = st.root.parent / "other"
    train(other, SPEC, models=200, batch=100)
    so = Store.open(other, "a")
    fit(so, "tiny", 0.5, targets="test", n_lambdas=4, lambda_min_ratio=1e-3, dtype="float64")
    support(so, fid, targets=[10, 12], ks=(1, 2, 4), trials=2)
    assert got == dmstore.connect(so).sql("SELECT target_id, support, k_hat FROM support ORDER BY 1").fetchall()


def test_estimate_needs_a_recorded_rate(tmp_path):
    st = Store.create(tmp_path / "bare", train_size=10, test_size=4)
    assert R.measured_rate(st, "tiny") is None
    assert "no training rate recorded" in R._estimate(st, TinyLinear(), np.array([10, 10]), 2)
