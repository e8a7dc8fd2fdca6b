"""Fits committed once (issue 25): a fit's identity is re-checked at commit against every commit
made since the snapshot it decided on. The race is made deterministic by a pause injected at
the worst point — after the writer decided (name free, no identical fit) and computed its
tables, just before its commit — in which a competitor runs to completion. A writer killed
after reserving a fit id gives the id back to the next writer."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import dmstore.store.fits as fits_mod
from dmstore import ConflictError, InputError, Store
from dmstore.fit import fit
from dmstore.ingest import ingest_scores
from dmstore.testing import alpha_masks, tree

D, N = 30, 5


@pytest.fixture
def st(tmp_path):
    rng = np.random.default_rng(5)
    X = alpha_masks(rng, 200, D, 0.5)
    Y = (X @ rng.normal(size=(D, D + N)) + rng.normal(scale=0.3, size=(200, D + N))).astype(np.float32)
    roles = np.array(["fit"] * 140 + ["val"] * 20 + ["eval"] * 40, dtype=object)
    s = Store.create(tmp_path / "s", train_size=D, test_size=N)
    s.append("e", 0.5, X, Y, np.arange(D + N), roles=roles)
    return s


def _scores(tmp_path, name, seed):
    p = tmp_path / name
    np.save(p, np.random.default_rng(seed).normal(size=(N, D)).astype(np.float32))
    return p


def _pause_before_first_commit(monkeypatch, competitor):
    """Run `competitor()` to completion inside the first fit commit, after its tables are
    computed and before its log commit (later commits go straight through)."""
    real = fits_mod.commit_unit
    calls = []

    def paused(*a, **kw):
        if not calls:
            calls.append(1)
            competitor()
        return real(*a, **kw)
    monkeypatch.setattr(fits_mod, "commit_unit", paused)
    return calls


def _runs(st):
    return Store.open(st.root).fit_runs().sort_by("fit_id").to_pylist()


def test_two_fits_under_one_name_racing(st, tmp_path, monkeypatch):
    a, b = _scores(tmp_path, "a.npy", 1), _scores(tmp_path, "b.npy", 2)
    won = []
    _pause_before_first_commit(monkeypatch, lambda: won.append(ingest_scores(st, b, "m", "e", 0.5, progress=False)))
    with pytest.raises(ConflictError, match=f"fit {2} is already named 'm'"):   # id 1: the loser's, given back
        ingest_scores(st, a, "m", "e", 0.5, progress=False)
    runs = _runs(st)
    assert [(r["fit_id"], r["estimator"]) for r in runs] == [(won[0].fit_id, "m")]
    assert json.loads(runs[0]["params"])["file"] == "b.npy"
    assert os.listdir(st.root / ".tmp") == [] and os.listdir(st.root / "_fit_ids") == ["00000002"]


def test_names_collide_without_case_at_commit(st, tmp_path, monkeypatch):
    a, b = _scores(tmp_path, "a.npy", 1), _scores(tmp_path, "b.npy", 2)
    _pause_before_first_commit(monkeypatch, lambda: ingest_scores(st, b, "TRAK", "e", 0.5, progress=False))
    with pytest.raises(ConflictError, match="already named 'trak'"):
        ingest_scores(st, a, "trak", "e", 0.5, progress=False)
    assert [r["estimator"] for r in _runs(st)] == ["TRAK"]


def test_two_identical_ingests_racing_commit_one_fit(st, tmp_path, monkeypatch):
    a = _scores(tmp_path, "a.npy", 1)
    other = []
    _pause_before_first_commit(monkeypatch, lambda: other.append(ingest_scores(st, a, "m", "e", 0.5, progress=False)))
    r = ingest_scores(st, a, "m", "e", 0.5, progress=False)
    assert r.reused and r.fit_id == other[0].fit_id and not other[0].reused
    assert [x["fit_id"] for x in _runs(st)] == [other[0].fit_id]
    assert os.listdir(st.root / ".tmp") == []


def test_two_identical_attributions_racing_commit_one_fit(st, tmp_path, monkeypatch):
    """`attribute` stores its scores with source 'attribute': its settings (not the file's bytes,
    which a recomputation may change) are its identity."""
    settings = {"method": "repsim", "library": "dmstore", "models_trained": "1", "seed": "0", "recipe": "r",
                "targets": "[30, 34, 5]"}
    a, b = _scores(tmp_path, "a.npy", 1), _scores(tmp_path, "b.npy", 2)   # two runs, different bytes
    other = []
    _pause_before_first_commit(monkeypatch, lambda: other.append(
        ingest_scores(st, b, "repsim", "e", 0.5, params=dict(settings, compute_seconds="3.0"), source="attribute",
                      progress=False)))
    r = ingest_scores(st, a, "repsim", "e", 0.5, params=dict(settings, compute_seconds="2.5"), source="attribute",
                      progress=False)
    assert r.reused and r.fit_id == other[0].fit_id and not other[0].reused
    assert len(_runs(st)) == 1


def test_two_identical_reuse_fits_racing(st, monkeypatch):
    other = []
    kw = dict(estimator="diff_means", progress=False, reuse=True)
    _pause_before_first_commit(monkeypatch, lambda: other.append(fit(st, "e", 0.5, **kw)))
    r = fit(st, "e", 0.5, **kw)
    assert r.reused and r.fit_id == other[0].fit_id and not other[0].reused
    assert len(_runs(st)) == 1
    # without reuse a second fit is what was asked for
    assert fit(st, "e", 0.5, estimator="diff_means", progress=False).fit_id == other[0].fit_id + 1


def test_a_killed_writers_fit_id_is_taken_back(st, tmp_path):
    """A writer killed (SIGKILL) after reserving a fit id under its lease: the next fit gets that id."""
    code = ("import os, signal\n"
            "from dmstore.storage import lease\n"
            "from dmstore.store.commit import reserve_fit_id\n"
            f"with lease.held({str(st.root)!r}, 'fit'):\n"
            f"    print(reserve_fit_id({str(st.root)!r}, 'fit'), flush=True)\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL and p.stdout.strip() == "1", p.stderr
    assert os.listdir(st.root / "_fit_ids") == ["00000001"]
    r = ingest_scores(st, _scores(tmp_path, "a.npy", 1), "m", "e", 0.5, progress=False)
    assert r.fit_id == 1


def test_a_run_reservation_is_never_taken_back(st, tmp_path):
    """A sharded run's id (reserved without a lease; its run record holds it) stays its own."""
    from dmstore.store.commit import reserve_fit_id
    assert reserve_fit_id(st.root, "run r") == 1
    r = ingest_scores(st, _scores(tmp_path, "a.npy", 1), "m", "e", 0.5, progress=False)
    assert r.fit_id == 2


def test_a_refused_ingest_leaves_everything_as_it_was(st, tmp_path):
    bad = np.random.default_rng(0).normal(size=(N, D)).astype(np.float32)
    bad[-1, -1] = np.nan          # found in the last block, after the fit id was reserved
    np.save(tmp_path / "nan.npy", bad)
    before = tree(st.root)
    with pytest.raises(InputError, match="nan.npy: row 4, column 29"):
        ingest_scores(st, tmp_path / "nan.npy", "m", "e", 0.5, progress=False)
    assert tree(st.root) == before

