"""Python UDFs on every connection: equal to scipy/numpy on random inputs with ties; user UDFs
through `connect(udfs=…)` and `dmstore query --udf module:function`."""
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from scipy import stats

import dmstore
from dmstore.cli import cli


def _lists(rng, rows=200):
    out = []
    for _ in range(rows):
        n = int(rng.integers(2, 60))
        a = rng.integers(0, 6, n).astype(float)       # few values: many ties
        b = a * rng.choice([1, -1]) + rng.integers(0, 4, n)
        out.append((a.tolist(), b.tolist()))
    return out


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
def test_spearman_and_kendall_equal_scipy_with_ties(filled):
    rng = np.random.default_rng(3)
    rows = _lists(rng) + [([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])]     # a constant side: NULL, as scipy's NaN
    con = dmstore.connect(filled.root)
    con.register("t", pa.table({"a": [r[0] for r in rows], "b": [r[1] for r in rows]}))
    got = con.sql("SELECT spearman(a, b), kendall_tau(a, b) FROM t").fetchall()
    for (a, b), (s, k) in zip(rows, got):
        ws, wk = stats.spearmanr(a, b).statistic, stats.kendalltau(a, b).statistic
        if np.isnan(ws):
            assert s is None and k is None
        else:
            assert s == pytest.approx(ws, abs=1e-12) and k == pytest.approx(wk, abs=1e-12)
    assert con.sql("SELECT spearman([1, NULL, 3, 4], [2, 5, NULL, 8])").fetchall()[0][0] == pytest.approx(1.0)


def test_bootstrap_ci_agrees_with_scipys_percentile_bootstrap(filled):
    con = dmstore.connect(filled.root)
    rng = np.random.default_rng(5)
    x = rng.normal(size=400)
    lo, hi = con.sql("SELECT ci.lo, ci.hi FROM (SELECT bootstrap_ci($x, 0.9, 20000, 7) AS ci)",
                     params={"x": x.tolist()}).fetchall()[0]
    ref = stats.bootstrap((x,), np.mean, confidence_level=0.9, n_resamples=20000, method="percentile",
                          random_state=np.random.default_rng(1)).confidence_interval
    se = x.std() / np.sqrt(x.size)
    assert abs(lo - ref.low) < 0.05 * se and abs(hi - ref.high) < 0.05 * se
    # order-independent (values are sorted first), deterministic per seed, NULLs dropped
    again = con.sql("SELECT bootstrap_ci($x, 0.9, 20000, 7)", params={"x": x[::-1].tolist() + [None]}).fetchall()[0][0]
    assert again == {"lo": lo, "hi": hi}
    assert con.sql("SELECT bootstrap_ci([]::DOUBLE[], 0.9, 10, 0)").fetchall()[0][0] is None


def test_mask_of_is_packbits_and_predicts_any_subset(filled, synth):
    con = dmstore.connect(filled.root)
    ids = [0, 3, 17, 39]
    bits = np.zeros(synth.d, bool)
    bits[ids] = True
    assert con.sql("SELECT mask_of($i)", params={"i": ids}).fetchall()[0][0] == np.packbits(bits).tobytes()
    with pytest.raises(dmstore.QueryError, match="train id 40 is not a train example"):
        con_q = "SELECT mask_of([40])"
        dmstore.engine.query(filled.root, con_q)


def test_user_udfs_from_python_and_the_cli(filled, tmp_path, monkeypatch):
    mod = tmp_path / "myudfs.py"
    mod.write_text(textwrap.dedent("""
        import pyarrow as pa
        from dmstore.engine.udfs import udf

        def double_it(x: float) -> float:          # row by row, types from the annotations
            return 2 * x

        @udf(["DOUBLE[]"], "DOUBLE")               # vectorized over an Arrow batch
        def my_sum(xs):
            return pa.array([sum(v) for v in xs.to_pylist()], pa.float64())
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    import myudfs
    con = dmstore.connect(filled.root, udfs=[myudfs.double_it, "myudfs:my_sum"])
    assert con.sql("SELECT double_it(2.5), my_sum([1.0, 2.0, 3.5])").fetchall() == [(5.0, 6.5)]
    r = CliRunner().invoke(cli, ["query", str(filled.root), "SELECT double_it(n_included) AS v FROM models LIMIT 1",
                                 "--udf", "myudfs:double_it", "--csv"])
    assert r.exit_code == 0 and r.output == "v\n40\n", r.output     # DOUBLE 40.0, CSV writes 40
    r = CliRunner().invoke(cli, ["query", str(filled.root), "SELECT 1", "--udf", "myudfs:nope"])
    assert r.exit_code == 1 and "--udf entry 'myudfs:nope' cannot be loaded" in r.output, r.output
    assert "myudfs" in sys.modules


def test_bootstrap_ci_is_bounded(filled):
    """Issue 25: n_boot above the cap and too many draws are refused with the limit named;
    resampling a long list stays in bounded memory (old code: 256 resamples of 10⁶ values at
    once peaked at 4.5 GB)."""
    import subprocess
    import sys

    from dmstore.engine.query import query
    from dmstore.engine.udfs import MAX_BOOT, MAX_DRAWS
    con = dmstore.connect(filled.root)
    with pytest.raises(dmstore.QueryError, match=f"n_boot 100000000 is above the limit of {MAX_BOOT:,}"):
        query(filled.root, "SELECT bootstrap_ci([1, 2, 3, 4, 5], 0.95, 100000000, 1)",
                     con=con)
    with pytest.raises(dmstore.QueryError, match=f"above the limit of {MAX_DRAWS:,}"):
        query(filled.root, "SELECT bootstrap_ci(list(range::DOUBLE), 0.95, 100000, 1) "
                                  "FROM (SELECT range FROM range(100000))", con=con)
    code = ("import resource, numpy as np\n"
            "from dmstore.engine.udfs import bootstrap_one\n"
            "v = np.random.default_rng(0).normal(size=1_000_000)\n"
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "ci = bootstrap_one(v, 0.95, 256, 1)\n"
            "print(ci['lo'] < v.mean() < ci['hi'], (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    inside, grew_mb = out.stdout.split()
    assert inside == "True" and int(grew_mb) < 200, out.stdout + out.stderr


def test_bootstrap_ci_chunked_long_resamples_agree_with_the_mean(monkeypatch):
    """A resample longer than the draw chunk is summed by chunks: the interval still covers the mean."""
    from dmstore.engine import udfs
    monkeypatch.setattr(udfs, "DRAW_CHUNK", 1000)
    v = np.random.default_rng(1).normal(size=5000)
    ci = udfs.bootstrap_one(v, 0.9, 200, 0)
    se = v.std() / np.sqrt(v.size)
    assert ci["lo"] < v.mean() < ci["hi"] and 2 * se < ci["hi"] - ci["lo"] < 5 * se
