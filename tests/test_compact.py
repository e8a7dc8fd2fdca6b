"""Compaction merges batches without changing a byte of what readers see."""
import numpy as np
import pyarrow.parquet as pq
from click.testing import CliRunner

from cli import cli
from dmstore import Store, schema
from dmstore.compact import compact

from conftest import Synth


def test_compact_merges_and_preserves_everything(tmp_path):
    s = Synth(m=60, d=40, n_test=12, seed=3)
    st = Store.create(tmp_path / "s", train_size=40, test_size=12)
    for lo in range(0, 50, 5):   # ten small batches on all targets
        st.append("e", 0.5, s.masks[lo:lo + 5], s.margins[lo:lo + 5], s.targets, seeds=s.seeds[lo:lo + 5])
    t = [41, 45]                 # a batch with another target set is never merged with them
    st.append("e", 0.5, s.masks[50:], s.margins[50:, t], t)
    con = st.connect()
    before = {v: con.sql(f"SELECT * FROM {v} ORDER BY ALL").fetchall() for v in ("models", "margins")}
    X, Y = st.mask_matrix("e", 0.5, role="fit"), st.margin_matrix("e", 0.5, targets=[41, 45])
    r = compact(st, max_cells=4 * 5 * 52)   # at most 4 of the small batches per merge
    assert r == {"before": 11, "after": 4, "merged": 10, "skipped": 0}
    con = st.connect()
    assert {v: con.sql(f"SELECT * FROM {v} ORDER BY ALL").fetchall() for v in ("models", "margins")} == before
    assert np.array_equal(st.mask_matrix("e", 0.5, role="fit"), X)
    assert np.array_equal(st.margin_matrix("e", 0.5, targets=[41, 45]), Y)
    for f in st.root.glob("batches/*/*.parquet"):
        kind = f.stem
        assert pq.read_schema(f).names == schema.arrow_schema(kind).names
    assert compact(st, max_cells=4 * 5 * 52)["merged"] == 0     # nothing left to merge
    res = CliRunner().invoke(cli, ["compact", str(st.root)])
    assert res.exit_code == 0 and "batches ->" in res.output
