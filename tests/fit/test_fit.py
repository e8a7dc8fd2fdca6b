"""The regression against independent oracles: scikit-learn's Lasso, and numpy for OLS, ridge
and difference of means; eq. 9 exclusion for train targets; selection; written tables."""
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from sklearn.linear_model import Lasso

from dmstore import Store
from dmstore.storage import schema
from dmstore.fit import fit
from dmstore.fit.solvers import Problem, gram_matvec, lasso_solve, lipschitz_gram

from dmstore.testing import alpha_masks

D, NT = 24, 4


def make_store(tmp_path, bernoulli=True, m=500, seed=0, val=True):
    rng = np.random.default_rng(seed)
    X = (rng.random((m, D)) < 0.5) if bernoulli else alpha_masks(rng, m, D, 0.5)
    th = rng.normal(size=(D, D + NT)) * (rng.random((D, D + NT)) < 0.3)
    Y = (X @ th + rng.normal(size=(m, D + NT)) + 2).astype(np.float32)
    st = Store.create(tmp_path / f"s{seed}{bernoulli}", train_size=D, test_size=NT)
    n_fit, n_val = int(m * 0.8), int(m * 0.1)
    roles = np.array(["fit"] * n_fit + (["val"] if val else ["fit"]) * n_val + ["eval"] * (m - n_fit - n_val), object)
    st.append("e", 0.5, X, Y, np.arange(D + NT), roles=roles, check_alpha=not bernoulli)
    return st, X, Y, roles


def read_fit(st, fit_id):
    con = st.connect()
    fits = con.sql("SELECT * FROM fits WHERE fit_id = $f ORDER BY target_id, lam DESC", params={"f": fit_id}).fetchnumpy()
    w = con.sql("SELECT target_id, lam, train_id, weight FROM weights WHERE fit_id = $f", params={"f": fit_id}).fetchnumpy()
    return fits, w


def weight_vector(w, t, lam):
    k = (w["target_id"] == t) & (w["lam"] == lam)
    out = np.zeros(D)
    out[w["train_id"][k]] = w["weight"][k]
    return out


def rows_for(X, roles, t, selected):
    ok = (roles == "fit") | ((roles == "val") & selected)
    if t < D:
        ok &= ~X[:, t]  # eq. 9: models trained on the target are excluded
    return np.flatnonzero(ok)


@pytest.mark.parametrize("targets,packed", [("test", False), ("train", False), ("test", True), ("train", True)])
def test_lasso_matches_sklearn(tmp_path, monkeypatch, targets, packed):
    """packed: mask rows never cached as floats; every product unpacks chunks of 37 rows (val
    rows for test targets, fit and val rows for eq. 9), and the refit on fit + val models applies
    the val share from the rows instead of one explicit fit + val Gram."""
    if packed:
        monkeypatch.setattr("dmstore.fit.blocks.VAL_GRAM_BYTES", 0)
        monkeypatch.setattr("dmstore.fit.operators.ROW_CACHE_BYTES", 0)
        monkeypatch.setattr("dmstore.fit.operators.CHUNK_BYTES", 4 * D * 37)
    st, X, Y, roles = make_store(tmp_path)
    r = fit(st, "e", 0.5, targets=targets, n_lambdas=6, lambda_min_ratio=1e-2, dtype="float64",
            tol=1e-12, max_iter=100000, keep_path=True)
    fits, w = read_fit(st, r.fit_id)
    assert fits["converged"].all()
    n_checked = 0
    for i in range(fits["lam"].size):
        t, lam, sel = int(fits["target_id"][i]), float(fits["lam"][i]), bool(fits["selected"][i])
        rows = rows_for(X, roles, t, sel)
        assert fits["n_models"][i] == rows.size
        Xa, ya = X[rows].astype(float), Y[rows, t].astype(float)
        sk = Lasso(alpha=lam, tol=1e-10, max_iter=1_000_000).fit(Xa, ya)
        wv, b = weight_vector(w, t, lam), fits["bias"][i]
        obj = lambda w_, b_: ((Xa @ w_ + b_ - ya) ** 2).mean() / 2 + lam * np.abs(w_).sum()  # noqa: E731
        assert abs(obj(wv, b) - obj(sk.coef_, sk.intercept_)) <= 1e-6 * obj(sk.coef_, sk.intercept_)
        assert np.abs(wv - sk.coef_).max() <= 1e-4, (t, lam)
        assert abs(b - sk.intercept_) <= 1e-4
        assert fits["nnz"][i] == (wv != 0).sum()
        assert fits["train_mse"][i] == pytest.approx(((Xa @ wv + b - ya) ** 2).mean(), rel=1e-6)
        if t < D:
            assert wv[t] == 0  # the target's own column is constant 0 on its rows
        n_checked += 1
    assert n_checked == (NT if targets == "test" else D) * 6


def test_lasso_exact_alpha_masks_objective(tmp_path):
    """Exact-αd masks leave w non-unique along the all-ones direction at small λ: compare
    objectives (what is unique) rather than coefficients."""
    st, X, Y, roles = make_store(tmp_path, bernoulli=False, seed=1)
    r = fit(st, "e", 0.5, targets="all", n_lambdas=5, dtype="float64", tol=1e-12, max_iter=100000)
    fits, w = read_fit(st, r.fit_id)
    sel = fits["selected"]
    for i in np.flatnonzero(sel):
        t, lam = int(fits["target_id"][i]), float(fits["lam"][i])
        rows = rows_for(X, roles, t, True)
        Xa, ya = X[rows].astype(float), Y[rows, t].astype(float)
        sk = Lasso(alpha=lam, tol=1e-10, max_iter=1_000_000).fit(Xa, ya)
        obj = lambda w_, b_: ((Xa @ w_ + b_ - ya) ** 2).mean() / 2 + lam * np.abs(w_).sum()  # noqa: E731
        assert abs(obj(weight_vector(w, t, lam), fits["bias"][i]) - obj(sk.coef_, sk.intercept_)) \
            <= 1e-6 * obj(sk.coef_, sk.intercept_)


def test_selection_is_argmin_val_mse(tmp_path):
    st, X, Y, roles = make_store(tmp_path, seed=2)
    r = fit(st, "e", 0.5, targets="test", n_lambdas=8, dtype="float64", tol=1e-12, max_iter=100000, keep_path=True)
    fits, w = read_fit(st, r.fit_id)
    val = roles == "val"
    for t in range(D, D + NT):
        k = fits["target_id"] == t
        lams, vm, sel = fits["lam"][k], fits["val_mse"][k], fits["selected"][k]
        assert sel.sum() == 1 and np.argmin(vm) == np.flatnonzero(sel)[0]
        # the stored val_mse of a path row is the MSE on val models of that path solution
        i = np.flatnonzero(~sel)[0]
        fit_rows = roles == "fit"
        wv = weight_vector(w, t, lams[i])
        b = Y[fit_rows, t].mean() - X[fit_rows].mean(0) @ wv
        assert vm[i] == pytest.approx(((X[val] @ wv + b - Y[val, t]) ** 2).mean(), rel=1e-6)  # float32 weights


def test_lambda_max_zero_and_just_below_nonzero():
    rng = np.random.default_rng(3)
    X = alpha_masks(rng, 400, 30, 0.5).astype(float)
    y = X[:, :3] @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=400)
    Xc, yc = X - X.mean(0), y - y.mean()
    G = torch.tensor(Xc.T @ Xc / 400)
    C = torch.tensor(Xc.T @ yc / 400)[:, None]
    s = torch.tensor([(yc ** 2).mean()])
    P = Problem(gram_matvec(G), C, s, torch.tensor([lipschitz_gram(G)], dtype=torch.float64))
    lam_max = C.abs().max()
    z = torch.zeros(30, 1, dtype=torch.float64)
    assert (lasso_solve(P, lam_max[None], z, 1e-12).W == 0).all()
    assert (lasso_solve(P, lam_max[None] * (1 - 1e-3), z, 1e-12, 100000).W != 0).sum() >= 1


def test_ols_ridge_diff_means_against_numpy(tmp_path):
    st, X, Y, roles = make_store(tmp_path, seed=4, m=800)
    rows_all = (roles == "fit") | (roles == "val")
    fid = {e: fit(st, "e", 0.5, estimator=e, targets="all", dtype="float64", max_iter=20000, n_lambdas=4).fit_id
           for e in ("ols", "diff_means", "diff_means_correct", "ridge")}
    for e in ("ols", "diff_means", "diff_means_correct"):
        fits, w = read_fit(st, fid[e])
        assert fits["selected"].all() and (fits["lam"] == 0).all()
        for i, t in enumerate(fits["target_id"]):
            rows = rows_all & (~X[:, t] if t < D else True)
            Xa = X[rows].astype(float)
            ya = Y[rows, t].astype(float)
            if e == "diff_means_correct":
                ya = (ya > 0).astype(float)
            if e == "ols":
                want = np.linalg.lstsq(Xa - Xa.mean(0), ya - ya.mean(), rcond=None)[0]  # minimum norm
            else:
                n1 = Xa.sum(0)
                with np.errstate(invalid="ignore", divide="ignore"):
                    want = (Xa.T @ ya) / n1 - ((1 - Xa).T @ ya) / (len(ya) - n1)
                want[(n1 == 0) | (n1 == len(ya))] = 0
            got = weight_vector(w, t, 0.0)
            assert np.allclose(got, want, atol=1e-6), (e, t)
            assert fits["bias"][i] == pytest.approx(ya.mean() - Xa.mean(0) @ want, abs=1e-6)
    fits, w = read_fit(st, fid["ridge"])
    for i in np.flatnonzero(fits["selected"]):
        t, lam = int(fits["target_id"][i]), float(fits["lam"][i])
        rows = rows_all & (~X[:, t] if t < D else True)
        Xa, ya = X[rows].astype(float), Y[rows, t].astype(float)
        Xc, yc = Xa - Xa.mean(0), ya - ya.mean()
        want = np.linalg.solve(Xc.T @ Xc / len(ya) + lam * np.eye(D), Xc.T @ yc / len(ya))
        assert np.allclose(weight_vector(w, t, lam), want, atol=1e-6)


def test_val_split_when_no_val_models(tmp_path):
    st, X, Y, roles = make_store(tmp_path, seed=5, val=False)
    r = fit(st, "e", 0.5, targets="test", n_lambdas=4)
    run = st.fit_runs().to_pylist()[0]
    assert run["val_source"] == "split" and 0 < run["n_val"] < run["n_fit"]
    assert r.n_fit + r.n_val == int((roles == "fit").sum())


def test_tables_match_schemas_and_refit_is_identical(tmp_path):
    st, *_ = make_store(tmp_path, seed=6)
    a = fit(st, "e", 0.5, targets="all", n_lambdas=5, keep_path=True)
    b = fit(st, "e", 0.5, targets="all", n_lambdas=5, keep_path=True)
    assert (a.fit_id, b.fit_id) == (1, 2)
    for kind in ("fits", "weights", "fit_runs"):
        files = sorted(st.root.glob(f"fits/*/{kind}.parquet"))
        assert len(files) == 3
        for f in files:
            got, want = pq.read_schema(f), schema.arrow_schema(kind)
            assert [(x.name, x.type, x.nullable) for x in got] == [(x.name, x.type, x.nullable) for x in want]
        ta, tb = (pq.read_table(f).drop_columns(["fit_id"]) for f in files[1:])
        if kind == "fit_runs":
            ta, tb = (t.drop_columns(["created_at", "wall_time_s"]) for t in (ta, tb))
        assert ta.equals(tb), kind


def test_fit_errors(tmp_path):
    from dmstore import InputError, NotFoundError
    st, *_ = make_store(tmp_path, seed=7)
    with pytest.raises(InputError, match="^estimator must be one of") as e:   # Python words …
        fit(st, "e", 0.5, estimator="svm")
    assert e.value.params == ("estimator",)                               # … the CLI shows --estimator
    with pytest.raises(NotFoundError, match="no models for experiment 'x'"):
        fit(st, "x", 0.5)
    with pytest.raises(InputError, match="target id 999"):
        fit(st, "e", 0.5, targets=[999])
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA device"):
            fit(st, "e", 0.5, device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(tmp_path):
    st, *_ = make_store(tmp_path, seed=8)
    a = fit(st, "e", 0.5, targets="all", n_lambdas=5, device="cpu", dtype="float64", tol=1e-10)
    b = fit(st, "e", 0.5, targets="all", n_lambdas=5, device="cuda", dtype="float64", tol=1e-10)
    fa, wa = read_fit(st, a.fit_id)
    fb, wb = read_fit(st, b.fit_id)
    assert np.allclose(fa["bias"], fb["bias"], atol=1e-5) and np.array_equal(fa["selected"], fb["selected"])
    for i in range(fa["lam"].size):
        t, lam = fa["target_id"][i], fa["lam"][i]
        assert np.allclose(weight_vector(wa, t, lam), weight_vector(wb, t, fb["lam"][i]), atol=1e-5)


def test_cli_fit(tmp_path):
    from click.testing import CliRunner
    from dmstore.cli import cli
    st, *_ = make_store(tmp_path, seed=9)
    r = CliRunner().invoke(cli, ["fit", str(st.root), "--experiment", "e", "--alpha", "0.5", "--lambdas", "4"])
    assert r.exit_code == 0 and "fit 1: lasso on 4 targets" in r.output, r.output
    r = CliRunner().invoke(cli, ["fit", str(st.root), "--experiment", "nope", "--alpha", "0.5"])
    assert r.exit_code == 1 and r.output.startswith("Error: no models")
    r = CliRunner().invoke(cli, ["fit", str(st.root), "--experiment", "e"])
    assert r.exit_code == 2


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ols_weights_are_minimum_norm_in_either_dtype(tmp_path, dtype):
    """Exact-size masks make the centred Gram singular along all-ones; float32 rounding used to
    grow the solution along it (weights summing to -10,000 where lstsq's are O(1)). Weights, not
    only predictions, must match numpy's minimum-norm lstsq, for test and train (eq. 9) targets."""
    rng = np.random.default_rng(11)
    d, nt, m = 20, 6, 600
    X = alpha_masks(rng, m, d, 0.5)
    th = rng.uniform(-2.5, 2.5, size=(d, d + nt))
    Y = (X @ th + rng.normal(scale=0.3, size=(m, d + nt)) + 40).astype(np.float32)
    st = Store.create(tmp_path / "s", train_size=d, test_size=nt)
    st.append("e", 0.5, X, Y, np.arange(d + nt))
    r = fit(st, "e", 0.5, estimator="ols", targets="all", dtype=dtype)
    fits, w = read_fit(st, r.fit_id)
    worst = 0.0
    for i, t in enumerate(fits["target_id"]):
        rows = ~X[:, t] if t < d else np.ones(m, bool)
        Xa, ya = X[rows].astype(float), Y[rows, t].astype(float)
        want = np.linalg.lstsq(Xa - Xa.mean(0), ya - ya.mean(), rcond=None)[0]
        k = w["target_id"] == t
        got = np.zeros(d)
        got[w["train_id"][k]] = w["weight"][k]
        err = np.linalg.norm(got - want) / np.linalg.norm(want)
        worst = max(worst, err)
        assert err <= 1e-4, (dtype, t, err, got.sum(), want.sum())
        assert fits["bias"][i] == pytest.approx(ya.mean() - Xa.mean(0) @ want, rel=1e-4)
    assert worst > 0   # compared real numbers


@pytest.mark.parametrize("estimator", ["diff_means", "diff_means_correct"])
def test_diff_means_against_numpy_without_a_gram(tmp_path, monkeypatch, estimator):
    """Difference of means (eq. 15) on the fit + val models, and its train MSE, against numpy; the
    fit builds no d x d Gram (a d = 60,000 store would need 14 GB for it): the MSE is streamed."""
    import dmstore.fit.gram as gram
    monkeypatch.setattr(gram.Accumulator, "__init__", lambda *a, **k: (_ for _ in ()).throw(AssertionError("Gram")))
    st, X, Y, roles = make_store(tmp_path)
    r = fit(st, "e", 0.5, estimator=estimator, targets="test", dtype="float64")
    fits, w = read_fit(st, r.fit_id)
    rows = np.flatnonzero(roles != "eval")
    Xa = X[rows].astype(float)
    for i, t in enumerate(fits["target_id"]):
        y = Y[rows, t].astype(float)
        if estimator.endswith("_correct"):
            y = (y > 0).astype(float)
        want = np.array([y[Xa[:, j] == 1].mean() - y[Xa[:, j] == 0].mean() for j in range(D)])
        wv = weight_vector(w, t, fits["lam"][i])
        assert np.allclose(wv, want, atol=1e-6)
        assert fits["train_mse"][i] == pytest.approx(((Xa @ wv + fits["bias"][i] - y) ** 2).mean(), rel=1e-6)


@pytest.mark.parametrize("estimator,keep_path", [("lasso", True), ("diff_means", False)])
def test_weights_streamed_in_small_tables_are_the_same_rows(tmp_path, monkeypatch, estimator, keep_path):
    """The weights are written block by block in tables of WEIGHT_TABLE_ROWS rows, dense blocks
    kept as [d, nb] matrices: the rows (and their order) equal those of one table per block."""
    import dmstore.fit.results as res
    st, X, Y, roles = make_store(tmp_path)
    kw = dict(estimator=estimator, targets="all", n_lambdas=4, keep_path=keep_path, block_size=7, dtype="float64")
    a = fit(st, "e", 0.5, **kw)
    monkeypatch.setattr(res, "WEIGHT_TABLE_ROWS", 37)
    monkeypatch.setattr(res, "DENSE_SHARE", 0.0 if estimator == "lasso" else 1.0)   # the other layout
    b = fit(st, "e", 0.5, **kw)
    q = "SELECT target_id, lam, train_id, weight FROM weights WHERE fit_id = {}"
    ra = st.connect().execute(q.format(a.fit_id)).fetchall()
    rb = st.connect().execute(q.format(b.fit_id)).fetchall()
    assert ra == rb and len(ra) > 100
    keys = [(t, -lam, i) for t, lam, i, _ in ra]
    assert keys == sorted(keys)                     # by target, decreasing λ, train id
