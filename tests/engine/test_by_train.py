"""A fit's train-major copy (`weights_by_train`, `dmstore compact --by-train`): the same rows as
`datamodels` (numpy's sort of them is the oracle), row groups ordered by train_id so a point
read prunes, written to the schema, retired with its fit, and refused or skipped without a trace
where it must be."""
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from dmstore import Store
from dmstore.engine import by_train
from dmstore.errors import CommitConflict, NotFoundError
from dmstore.ingest import ingest_scores
from dmstore.storage import log
from dmstore.storage.schema import arrow_schema


def _rows(con, sql, **params):
    r = con.sql(sql, params=params or None).fetchnumpy()
    return {k: np.asarray(v) for k, v in r.items()}


@pytest.fixture
def dense(filled, synth, tmp_path, monkeypatch):
    """A dense fit (every train example weighs on every target) from a score matrix, with row
    groups small enough that one file has many."""
    rng = np.random.default_rng(5)
    S = rng.normal(size=(synth.n_test, synth.d)).astype(np.float32)
    np.save(tmp_path / "s.npy", S)
    fit = ingest_scores(filled, tmp_path / "s.npy", "dense", "exp", synth.alpha, progress=False).fit_id
    monkeypatch.setattr(by_train, "BY_TRAIN_GROUP_ROWS", 64)
    return filled, fit, tmp_path / "s.npy"


def test_the_copy_holds_the_fits_selected_weights_sorted_by_train_example(dense):
    st, fit, _ = dense
    before = st.snapshot().version
    assert [f["by_train"] for f in st.info()["fit_runs"] if f["fit_id"] == fit] == [False]
    r = st.copy_by_train(fit, progress=False)
    assert r["written"] and st.snapshot().version == before + 1
    assert [f["by_train"] for f in st.info()["fit_runs"] if f["fit_id"] == fit] == [True]   # `dmstore info` says so
    con = st.connect()
    want = _rows(con, "SELECT fit_id, target_id, lam, train_id, weight FROM datamodels WHERE fit_id = $f", f=fit)
    order = np.lexsort((want["target_id"], want["train_id"]))   # numpy's sort: the oracle
    [path] = st.snapshot().files("weights_by_train")
    f = pq.ParquetFile(path)
    got = f.read()
    assert got.schema.equals(arrow_schema("weights_by_train"), check_metadata=False)
    assert r["rows"] == got.num_rows == want["weight"].size > 0
    for c in ("fit_id", "target_id", "lam", "train_id", "weight"):
        assert np.array_equal(got.column(c).to_numpy(), want[c][order]), c
    # row groups follow train_id: a filter on one train id admits at most the groups that hold it
    col = got.schema.get_field_index("train_id")
    stats = [(f.metadata.row_group(g).column(col).statistics.min, f.metadata.row_group(g).column(col).statistics.max)
             for g in range(f.metadata.num_row_groups)]
    assert len(stats) > 3 and all(a[1] <= b[0] for a, b in zip(stats, stats[1:]))
    assert all(f.metadata.row_group(g).num_rows <= 64 for g in range(f.metadata.num_row_groups))
    # the view answers one example as datamodels does
    i = int(want["train_id"][0])
    a = _rows(con, "SELECT target_id, weight FROM weights_by_train WHERE fit_id = $f AND train_id = $i "
                   "ORDER BY target_id", f=fit, i=i)
    b = _rows(con, "SELECT target_id, weight FROM datamodels WHERE fit_id = $f AND train_id = $i "
                   "ORDER BY target_id", f=fit, i=i)
    assert np.array_equal(a["target_id"], b["target_id"]) and np.array_equal(a["weight"], b["weight"])


def test_a_second_copy_is_skipped_and_an_unknown_fit_refused_leaving_the_store_as_it_was(dense, tmp_path):
    st, fit, _ = dense
    st.copy_by_train(fit, progress=False)
    v = st.snapshot().version
    assert st.copy_by_train(fit, progress=False)["written"] is False
    with pytest.raises(NotFoundError, match="no fit 99"):
        st.copy_by_train(99, progress=False)
    assert st.snapshot().version == v
    cli = [sys.executable, "-m", "dmstore", "-q", "compact", str(st.root), "--by-train", "99"]
    p = subprocess.run(cli, capture_output=True, text=True)
    assert p.returncode == 1 and "no fit 99" in p.stderr and st.snapshot().version == v
    p = subprocess.run(cli[:-1] + ["x"], capture_output=True, text=True)
    assert p.returncode == 2 and "--by-train" in p.stderr


def test_overwriting_the_fit_retires_its_copy(dense):
    st, fit, path = dense
    st.copy_by_train(fit, progress=False)
    assert set(by_train.copied_fits(st.snapshot())) == {fit}
    np.save(path, np.load(path) * 2)
    new = ingest_scores(st, path, "dense", "exp", 0.5, mode="overwrite", progress=False).fit_id
    assert new != fit and by_train.copied_fits(st.snapshot()) == {}
    assert st.connect().sql("SELECT count(*) FROM weights_by_train").fetchall() == [(0,)]


def test_a_fit_retired_while_its_copy_is_written_leaves_no_copy(dense, monkeypatch):
    """Attack: another process overwrites the fit while the copy streams; the copy's commit must
    fail and leave nothing live that names the retired fit."""
    st, fit, path = dense
    np.save(path, np.load(path) * 3)
    real = by_train.run

    def racing(con, name, **p):
        rel = real(con, name, **p)
        code = (f"from dmstore import Store; from dmstore.ingest import ingest_scores; "
                f"ingest_scores(Store.open({str(st.root)!r}, 'a'), {str(path)!r}, 'dense', 'exp', 0.5, "
                f"mode='overwrite', progress=False)")
        subprocess.run([sys.executable, "-c", code], check=True)
        return rel
    monkeypatch.setattr(by_train, "run", racing)
    with pytest.raises(CommitConflict, match="retired"):
        st.copy_by_train(fit, progress=False)
    snap = log.snapshot(st.root)
    assert by_train.copied_fits(snap) == {}
    assert fit not in {e.get("fit_id") for e in snap.units.values()}
    assert [h["operation"] for h in log.history(st.root)][-1] != "by-train"


def test_a_fit_that_keeps_its_path_copies_only_its_selected_weights(filled):
    """A lasso fit with --keep-path stores every lambda's weights: its copy (read through the join
    with fits) holds exactly the selected rows, as `datamodels` gives them, sorted by train id."""
    from dmstore.fit import fit
    f = fit(filled, "exp", filled.experiments()[0]["alpha"], n_lambdas=5, keep_path=True, progress=False).fit_id
    con = filled.connect()
    n_stored = con.sql(f"SELECT count(*) FROM weights WHERE fit_id = {f}").fetchall()[0][0]
    want = _rows(con, "SELECT fit_id, target_id, lam, train_id, weight FROM datamodels WHERE fit_id = $f", f=f)
    assert n_stored > want["weight"].size > 0
    assert filled.copy_by_train(f, progress=False)["rows"] == want["weight"].size
    order = np.lexsort((want["target_id"], want["train_id"]))
    [path] = filled.snapshot().files("weights_by_train")
    file_order = pq.read_table(path)
    for c in ("fit_id", "target_id", "lam", "train_id", "weight"):
        assert np.array_equal(file_order.column(c).to_numpy(), want[c][order]), c
