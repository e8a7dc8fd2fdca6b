"""`fit --path-patience K`: a target leaves the λ path after K consecutive λ whose validation
MSE is above its best; the λ it walked are the full path's (same rows, same weights), the λ it
skipped have no rows, and the selection is the full path's wherever the validation curve does
not turn down again after K rises (checked here against the full path's own rows)."""
import numpy as np
import pytest
from click.testing import CliRunner

from dmstore import InputError, Store
from dmstore.cli import cli
from dmstore.fit import fit
from dmstore.testing import Synth


@pytest.fixture
def st(tmp_path):
    s = Synth(m=200, d=40, n_test=12, seed=5)
    store = Store.create(tmp_path / "s", train_size=s.d, test_size=s.n_test)
    roles = np.array(["fit"] * 120 + ["val"] * 40 + ["eval"] * 40, dtype=object)
    store.append("exp", 0.5, s.masks, s.margins, s.targets, seeds=s.seeds, roles=roles)
    return store


def _fits(con, fid):
    return con.sql("SELECT target_id, lam, val_mse, nnz, selected FROM fits WHERE fit_id = $f "
                   "ORDER BY target_id, lam DESC", params={"f": fid}).fetchnumpy()


@pytest.mark.parametrize("targets", ["test", "all"])
def test_patience_walks_a_prefix_of_the_full_path(st, targets):
    kw = dict(targets=targets, n_lambdas=12, lambda_min_ratio=1e-4, dtype="float64", tol=1e-10, max_iter=50000,
              keep_path=True, progress=False)
    full = fit(st, "exp", 0.5, **kw).fit_id
    short = fit(st, "exp", 0.5, path_patience=2, **kw).fit_id
    con = st.connect()
    a, b = _fits(con, full), _fits(con, short)
    assert b["lam"].size < a["lam"].size                          # some λ were skipped
    skipped_some = 0
    for t in np.unique(a["target_id"]):
        ka, kb = a["target_id"] == t, b["target_id"] == t
        n = int(kb.sum())
        np.testing.assert_allclose(b["lam"][kb], a["lam"][ka][:n], rtol=1e-12)   # a prefix of the path
        np.testing.assert_allclose(b["val_mse"][kb][:-1], a["val_mse"][ka][:n - 1], rtol=1e-6)
        va = a["val_mse"][ka]
        best = int(np.argmin(va[:n]))
        if n < ka.sum():                                           # left: the last 2 walked are above the best
            skipped_some += 1
            assert n - 1 - best == 2 and (va[best + 1:n] > va[best]).all()
        else:
            assert n - 1 - best < 2 or n == ka.sum()
        sel_a, sel_b = a["lam"][ka][a["selected"][ka]], b["lam"][kb][b["selected"][kb]]
        if va.argmin() < n:                                        # the full path's best lies on the prefix
            np.testing.assert_allclose(sel_b, sel_a, rtol=1e-12)
    assert skipped_some >= 3
    w = con.sql("""SELECT count(*), max(abs(x.weight - y.weight)) FROM weights x JOIN weights y
                   USING (target_id, lam, train_id) WHERE x.fit_id = $a AND y.fit_id = $b""",
                params={"a": full, "b": short}).fetchall()[0]
    n_short = con.sql("SELECT count(*) FROM weights WHERE fit_id = $b", params={"b": short}).fetchall()[0][0]
    assert w[0] == n_short and w[1] < 1e-6                       # every weight of the short path is the full path's
    skipped = con.sql("""SELECT count(*) FROM weights x ANTI JOIN fits f ON f.fit_id = x.fit_id
                         AND f.target_id = x.target_id AND f.lam = x.lam WHERE x.fit_id = $b""",
                      params={"b": short}).fetchall()[0][0]
    assert skipped == 0                                            # no weights at a skipped λ


def test_patience_is_part_of_the_identity_and_checked(st):
    a = fit(st, "exp", 0.5, n_lambdas=6, progress=False).fit_id
    b = fit(st, "exp", 0.5, n_lambdas=6, path_patience=2, progress=False, reuse=True).fit_id
    assert a != b
    assert fit(st, "exp", 0.5, n_lambdas=6, path_patience=2, progress=False, reuse=True).fit_id == b
    with pytest.raises(InputError, match="path_patience"):
        fit(st, "exp", 0.5, path_patience=0, progress=False)
    res = CliRunner().invoke(cli, ["fit", str(st.root), "--experiment", "exp", "--alpha", "0.5", "--path-patience", "0"])
    assert res.exit_code == 2
    res = CliRunner().invoke(cli, ["-q", "fit", str(st.root), "--experiment", "exp", "--alpha", "0.5", "--lambdas", "6",
                                   "--path-patience", "3"])
    assert res.exit_code == 0, res.output
    rt = Store.open(st.root).connect().sql("SELECT params FROM fit_runs ORDER BY fit_id DESC LIMIT 1").fetchall()[0][0]
    assert '"path_patience": 3' in rt
