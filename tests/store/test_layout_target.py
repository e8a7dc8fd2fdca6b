"""`compact --layout target`: margins rewritten target-major read back byte-identical (matrices,
chunks, SQL), a block of targets reads only its row groups, later writes (append, overwrite)
and a compaction back to model-major keep every margin, and a fit is unchanged."""
import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from dmstore import Store
from dmstore.cli import cli
from dmstore.store.compact import compact
from dmstore.fit import fit
from dmstore.storage.parquet import LAYOUT_KEY

from dmstore.testing import Synth


@pytest.fixture
def st(tmp_path, monkeypatch):
    monkeypatch.setattr("dmstore.storage.parquet.TARGET_GROUP_ROWS", 200)   # 2 targets (of 90 models) per row group
    s = Synth(m=90, d=20, n_test=7, seed=11)
    store = Store.create(tmp_path / "s", train_size=s.d, test_size=s.n_test)
    roles = np.array((["fit"] * 6 + ["val"] * 2 + ["eval"] * 2) * 9, dtype=object)
    for lo in range(0, 90, 30):   # three batches
        store.append("exp", 0.5, s.masks[lo:lo + 30], s.margins[lo:lo + 30], s.targets, seeds=s.seeds[lo:lo + 30],
                     roles=roles[lo:lo + 30])
    return store, s


def _sql_rows(store):
    return store.connect().sql("SELECT model_id, example_id, margin FROM margins ORDER BY 1, 2").fetchall()


def test_target_major_reads_back_identical_and_reads_only_its_groups(st, monkeypatch):
    store, s = st
    before = {r: store.margin_matrix("exp", 0.5, role=r) for r in (None, "fit", "eval")}
    sub = np.array([3, 4, 21, 26])
    before_sub = store.margin_matrix("exp", 0.5, role="val", targets=sub)
    rows = _sql_rows(store)
    res = CliRunner().invoke(cli, ["-q", "compact", str(store.root), "--layout", "target"])
    assert res.exit_code == 0 and "3 batches -> 1" in res.output, res.output
    store = Store.open(store.root, "a")
    (bd,) = [b for b in store.snapshot().paths("batches") if b.name != "0-empty"]
    pf = pq.ParquetFile(bd / "margins.parquet")
    assert pf.schema_arrow.metadata[LAYOUT_KEY.encode()] == b"target"
    assert pf.num_row_groups == 14 and pf.metadata.row_group(0).num_rows == 180  # whole targets (200 // 90 = 2)
    ex = pf.read(columns=["example_id"])["example_id"].to_numpy()
    assert (np.diff(ex) >= 0).all()                                               # sorted by target
    for r, want in before.items():
        assert np.array_equal(store.margin_matrix("exp", 0.5, role=r), want)     # byte-exact float32
    calls = []
    real = pq.ParquetFile.read_row_groups
    monkeypatch.setattr(pq.ParquetFile, "read_row_groups",
                        lambda self, groups, **kw: calls.append(list(groups)) or real(self, groups, **kw))
    assert np.array_equal(store.margin_matrix("exp", 0.5, role="val", targets=sub), before_sub)
    assert calls == [[1, 2, 10, 13]]                                              # 4 of 14 groups
    assert _sql_rows(store) == rows
    one = store.connect().sql("SELECT model_id, margin FROM margins WHERE example_id = 21 ORDER BY 1").fetchnumpy()
    assert np.array_equal(one["margin"], before[None][:, 21])
    chunks = list(store.iter_chunks("exp", 0.5, targets=sub, max_rows=7))
    assert np.array_equal(np.concatenate([c["margins"] for c in chunks]), before[None][:, sub])


def test_target_groups_spanning_targets_and_later_writes(st, monkeypatch):
    store, s = st
    monkeypatch.setattr("dmstore.storage.parquet.TARGET_GROUP_ROWS", 1)      # not used: at least one target per group
    compact(store, layout="target", max_cells=30 * 27)             # one batch per source, each rewritten
    store = Store.open(store.root, "a")
    assert store.margin_matrix("exp", 0.5).shape == (90, 27)
    # an overwrite rewrites one target-major batch without some models: still target-major, still
    # right, also when its row groups (37 rows) split targets of 25 models across groups
    monkeypatch.setattr("dmstore.storage.parquet.ROW_GROUP_ROWS", 37)
    new = s.margins[:5] + 1
    ids = store.models("exp", 0.5, columns=["model_id"])["model_id"].to_numpy()[:5]
    store.append("exp", 0.5, s.masks[:5], new, s.targets, seeds=s.seeds[:5], model_ids=ids, mode="overwrite",
                 roles=["fit"] * 5)
    want = s.margins.copy()
    want[:5] = new
    split = [pq.ParquetFile(b / "margins.parquet") for b in store.snapshot().paths("batches")
             if b.name != "0-empty" and pq.ParquetFile(b / "margins.parquet").metadata.num_rows == 25 * 27]
    assert len(split) == 1 and split[0].metadata.row_group(0).num_rows == 37
    assert split[0].schema_arrow.metadata[LAYOUT_KEY.encode()] == b"target"
    got = store.margin_matrix("exp", 0.5)
    assert np.array_equal(got, want)
    assert np.array_equal(store.margin_matrix("exp", 0.5, targets=np.array([0, 26])), want[:, [0, 26]])
    compact(store, layout="model")
    store = Store.open(store.root, "a")
    assert np.array_equal(store.margin_matrix("exp", 0.5), want)
    for bd in store.snapshot().paths("batches"):
        assert LAYOUT_KEY.encode() not in (pq.read_schema(bd / "margins.parquet").metadata or {})


def test_a_fit_is_the_same_on_either_layout(st, tmp_path):
    import shutil
    store, s = st
    other = tmp_path / "copy"
    shutil.copytree(store.root, other)
    compact(Store.open(other, "a"), layout="target")
    a = fit(store, "exp", 0.5, targets="all", n_lambdas=4, dtype="float64", progress=False).fit_id
    b = fit(Store.open(other, "a"), "exp", 0.5, targets="all", n_lambdas=4, dtype="float64", progress=False).fit_id
    q = "SELECT target_id, lam, train_id, weight FROM weights WHERE fit_id = $f ORDER BY 1, 2, 3"
    assert store.connect().sql(q, params={"f": a}).fetchall() == Store.open(other).connect().sql(q, params={"f": b}).fetchall()
