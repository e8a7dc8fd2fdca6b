"""Compaction merges batches without changing a byte of what readers see, and an interrupted
compaction changes nothing."""
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import pyarrow.parquet as pq
from click.testing import CliRunner

from dmstore.cli import cli
from dmstore import Store
from dmstore.storage import log, schema
from dmstore.store.compact import compact
from dmstore.storage.vacuum import vacuum

from dmstore.testing import Synth


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
    r = compact(st, max_cells=4 * 5 * 52, layout="model")   # at most 4 of the small batches per merge
    assert r == {"before": 11, "after": 4, "merged": 10, "skipped": 0}
    con = st.connect()
    assert {v: con.sql(f"SELECT * FROM {v} ORDER BY ALL").fetchall() for v in ("models", "margins")} == before
    assert np.array_equal(st.mask_matrix("e", 0.5, role="fit"), X)
    assert np.array_equal(st.margin_matrix("e", 0.5, targets=[41, 45]), Y)
    for f in st.root.glob("batches/*/*.parquet"):
        kind = f.stem
        assert pq.read_schema(f).names == schema.arrow_schema(kind).names
    assert compact(st, max_cells=4 * 5 * 52, layout="model")["merged"] == 0     # nothing left to merge
    res = CliRunner().invoke(cli, ["compact", str(st.root)])
    assert res.exit_code == 0 and "batches ->" in res.output
    # the default layout is the one datamodel reads want: every live batch target-major
    from dmstore.storage.parquet import is_target_major
    live = [st.root / f for f in log.snapshot(st.root).files("margins") if "0-empty" not in f]
    assert live and all(is_target_major(f) for f in live)
    assert {v: st.connect().sql(f"SELECT * FROM {v} ORDER BY ALL").fetchall() for v in ("models", "margins")} == before


COMPACT = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)   # a suite started in the background ignores SIGINT
from dmstore import Store
from dmstore.store.compact import compact
st = Store.open(sys.argv[1], "a")
print("ready", flush=True)
compact(st, max_cells=int(sys.argv[2]), layout=sys.argv[3])
print("done", flush=True)
"""


def _exactly_once(root, s, m, n):
    import dmstore
    con = dmstore.connect(root)
    got = con.sql("SELECT count(*), count(DISTINCT model_id), (SELECT count(*) FROM margins) FROM models").fetchall()
    assert got == [(m, m, m * n)], got
    st = Store.open(root)
    assert np.array_equal(st.mask_matrix("e", 0.5), s.masks)
    assert np.array_equal(st.margin_matrix("e", 0.5), s.margins)


@pytest.mark.parametrize("sig,layout", [(signal.SIGKILL, "model"), (signal.SIGINT, "model"),
                                        (signal.SIGKILL, "target")], ids=["SIGKILL", "SIGINT", "SIGKILL-target"])
def test_compaction_killed_at_random_points(tmp_path, sig, layout):
    """12 compactions per case (merging, or rewriting target-major; 36 kills in all) killed at
    random points of a measured run: every model
    is stored exactly once afterwards, with its exact margins, and a rerun completes (and so
    does vacuum)."""
    m, n, per = 240, 52, 8
    s = Synth(m=m, d=40, n_test=12, seed=5)
    base = Store.create(tmp_path / "base", train_size=40, test_size=12)
    for lo in range(0, m, per):
        base.append("e", 0.5, s.masks[lo:lo + per], s.margins[lo:lo + per], s.targets)
    cells = 4 * per * n
    rng = np.random.default_rng(int(sig))

    def run(root, kill_after=None):
        p = subprocess.Popen([sys.executable, "-c", COMPACT, str(root), str(cells), layout], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        t0 = time.time()
        if kill_after is None:
            p.communicate(timeout=120)
            return time.time() - t0, p.returncode
        try:   # a run that ends before its kill time tells how long a run takes now
            p.wait(timeout=kill_after)
            p.communicate(timeout=120)
            return time.time() - t0, p.returncode
        except subprocess.TimeoutExpired:
            p.send_signal(sig)
            p.communicate(timeout=120)
            return None, p.returncode

    shutil.copytree(base.root, tmp_path / "calib")
    duration, rc = run(tmp_path / "calib")
    assert rc == 0
    outcomes = []
    for i in range(12):
        root = tmp_path / f"r{i}"
        shutil.copytree(base.root, root)
        took, rc = run(root, kill_after=float(rng.uniform(0, duration)))
        if took is not None:   # finished before the kill (the calibration ran on a busier machine):
            duration = min(duration, took)   # aim the next kills within the time a run takes now
        outcomes.append(rc)
        _exactly_once(root, s, m, n)
        r = compact(Store.open(root, "a"), max_cells=cells, layout=layout)   # a rerun completes the job
        assert r["skipped"] == 0 and r["after"] <= 10
        assert compact(Store.open(root, "a"), max_cells=cells, layout=layout)["merged"] == 0   # nothing left
        _exactly_once(root, s, m, n)
        vacuum(root, retain_hours=0, force=True)                     # and leaves nothing behind
        _exactly_once(root, s, m, n)
        live = {p.name for p in Store.open(root).snapshot().paths("batches")}
        assert {p.name for p in (root / "batches").iterdir()} == live
        shutil.rmtree(root)
    assert any(rc != 0 for rc in outcomes)   # some really were killed mid-way
