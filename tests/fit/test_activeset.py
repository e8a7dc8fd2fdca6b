"""The LASSO solvers where models are not ≫ features, against scikit-learn's Lasso: every
solver on an m < d store, working sets that must grow several times (and columns handed to the
full problem), feature-sign steps that must grow the support many times from zero,
and the certificate (the full problem's duality gap) that decides `converged`."""
import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso

from dmstore import Store
from dmstore.fit import activeset, fit, workingset
from dmstore.fit.solvers import Problem, gram_matvec, lasso_objective_gap, lipschitz_gram


def lasso_objective(Xa, ya, w, b, lam):
    return ((Xa @ w + b - ya) ** 2).mean() / 2 + lam * np.abs(w).sum()


def gram_problem(X, y):
    """The centred problem of the solvers for rows X [m, d] (float64) and targets y [m, n]."""
    Xc = X - X.mean(0)
    yc = y - y.mean(0)
    m = X.shape[0]
    G = torch.as_tensor(Xc.T @ Xc / m)
    C = torch.as_tensor(Xc.T @ yc / m)
    s = torch.as_tensor((yc * yc).sum(0) / m)
    L = torch.full((y.shape[1],), lipschitz_gram(G))
    return Problem(gram_matvec(G), C, s, L, lambda idx, j=None: G[:, idx], lambda idx, cols=None: G[idx[:, :, None], idx[:, None, :]])


def use_kernel(monkeypatch, kernel):
    """Data-space rows as int8 with integer products, or float chunks, whatever the CPU's probe says."""
    monkeypatch.setattr("dmstore.fit.operators.int8_available", lambda dev: kernel == "int8")


@pytest.mark.parametrize("solver,rows,kernel", [
    ("workingset", False, "float"), ("activeset", False, "float"), ("fista", False, "float"), ("auto", False, "float"),
    ("workingset", True, "float"), ("fista", True, "float"), ("auto", True, "float"),
    ("workingset", True, "int8"), ("fista", True, "int8")])
def test_fewer_models_than_features(tmp_path, monkeypatch, solver, rows, kernel):
    """m = 60 fit models, d = 90 features: X_cᵀX_c is singular, the objective is still unique;
    each (target, λ) of the path matches sklearn's objective and is certified converged. rows:
    the Gram counts as too large (GRAM_BYTES_MAX = 0), so working sets ('auto' here) run in data
    space with no d × d Gram, and fit_runs says so; there the mask rows are int8 with integer
    products, or float chunks (kernel)."""
    use_kernel(monkeypatch, kernel)
    if rows:
        monkeypatch.setattr("dmstore.fit.pipeline.GRAM_BYTES_MAX", 0)
    rng = np.random.default_rng(3)
    d, nt, m_fit, m_val = 90, 3, 60, 20
    X = rng.random((m_fit + m_val, d)) < 0.5
    th = rng.normal(size=(d, d + nt)) * (rng.random((d, d + nt)) < 0.1)
    Y = (X @ th + 0.3 * rng.normal(size=(m_fit + m_val, d + nt))).astype(np.float32)
    st = Store.create(tmp_path / "s", train_size=d, test_size=nt)
    roles = np.array(["fit"] * m_fit + ["val"] * m_val, dtype=object)
    st.append("e", 0.5, X, Y, np.arange(d + nt), roles=roles, check_alpha=False)
    r = fit(st, "e", 0.5, n_lambdas=5, lambda_min_ratio=1e-2, dtype="float64", tol=1e-10, max_iter=200000,
            keep_path=True, solver=solver, progress=False)
    con = st.connect()
    fits = con.sql("SELECT * FROM fits WHERE fit_id = $f", params={"f": r.fit_id}).fetchnumpy()
    w = con.sql("SELECT target_id, lam, train_id, weight FROM weights WHERE fit_id = $f",
                params={"f": r.fit_id}).fetchnumpy()
    assert fits["converged"].all() and (fits["rel_gap"] <= 1e-10).all()
    runtime = json.loads(con.sql(f"SELECT params FROM fit_runs WHERE fit_id = {r.fit_id}").fetchall()[0][0])["runtime"]
    in_rows = rows and solver in ("auto", "workingset")
    assert runtime["solver"]["test"].startswith("working sets in data space") == in_rows
    assert ("gram" in runtime) == (not in_rows)
    assert runtime.get("rows") == ((f"{'int8' if kernel == 'int8' else 'float64'} products") if in_rows else None)
    for i in range(fits["lam"].size):
        t, lam, sel = int(fits["target_id"][i]), float(fits["lam"][i]), bool(fits["selected"][i])
        rows = np.flatnonzero((roles == "fit") | sel)          # the selected λ is refitted on fit + val
        Xa, ya = X[rows].astype(float), Y[rows, t].astype(float)
        sk = Lasso(alpha=lam, tol=1e-12, max_iter=1_000_000).fit(Xa, ya)
        k = (w["target_id"] == t) & (w["lam"] == lam)
        wv = np.zeros(d)
        wv[w["train_id"][k]] = w["weight"][k]
        ours, ref = lasso_objective(Xa, ya, wv, fits["bias"][i], lam), lasso_objective(Xa, ya, sk.coef_, sk.intercept_, lam)
        assert ours <= ref * (1 + 1e-7), (t, lam, ours, ref)     # never worse than sklearn's optimum
        assert ours >= ref * (1 - 1e-6), (t, lam, ours, ref)     # and sklearn is optimal: equal


def test_feature_sign_grows_the_support_from_zero(monkeypatch):
    """From w = 0, adding at most 3 violating features per step, the steps must grow the support
    many times (and drop features whose coefficient reaches zero) to reach sklearn's optimum;
    the result's duality gap on the full problem is at rounding level."""
    rng = np.random.default_rng(7)
    m, d, n = 150, 120, 2
    X = (rng.random((m, d)) < 0.5).astype(float)
    th = rng.normal(size=(d, n)) * (rng.random((d, n)) < 0.25)
    y = X @ th + 0.5 * rng.normal(size=(m, n))
    P = gram_problem(X, y)
    monkeypatch.setattr(activeset, "GROW", 3)
    monkeypatch.setattr(activeset, "MAX_STEPS", 500)
    steps = []
    real = activeset._solve_spd
    monkeypatch.setattr(activeset, "_solve_spd", lambda A, b: (steps.append(A.shape[0]), real(A, b))[1])
    for j in range(n):
        lam = 0.02 * float(P.C[:, j].abs().max())
        steps.clear()
        w, hw = activeset.newton_column(P, j, torch.zeros(d, dtype=torch.float64), lam)
        sk = Lasso(alpha=lam, tol=1e-14, max_iter=1_000_000).fit(X, y[:, j])
        support = int((sk.coef_ != 0).sum())
        assert support > 15 and len(steps) >= support // 3    # grown 3 at a time: many steps
        assert max(steps) >= support
        np.testing.assert_allclose(w.numpy(), sk.coef_, atol=1e-7)
        _, gap, _ = lasso_objective_gap(w[:, None], hw[:, None], P.C[:, j:j + 1], P.s[j:j + 1],
                                        torch.tensor([lam], dtype=torch.float64))
        assert float(gap[0]) <= 1e-12 * float(P.s[j])


def test_converged_is_decided_by_the_full_gap(monkeypatch):
    """Newton steps that cannot settle (one step allowed) leave the column to FISTA: the result is
    still certified by the full problem's gap, never by the step's own bookkeeping."""
    rng = np.random.default_rng(11)
    m, d, n = 120, 100, 4
    X = (rng.random((m, d)) < 0.5).astype(float)
    y = X @ (rng.normal(size=(d, n)) * (rng.random((d, n)) < 0.3)) + rng.normal(size=(m, n))
    P = gram_problem(X, y)
    lam = 0.01 * P.C.abs().amax(0)
    monkeypatch.setattr(activeset, "FISTA_FIRST", 1)
    monkeypatch.setattr(activeset, "MAX_STEPS", 1)
    sol = activeset.lasso_activeset(P, lam, torch.zeros(d, n, dtype=torch.float64), tol=1e-9, max_iter=100000)
    _, gap, _ = lasso_objective_gap(sol.W, P.matvec(sol.W, torch.arange(n)), P.C, P.s, lam)
    rel = gap / (0.5 * P.s)
    assert sol.converged.all() and (rel <= 1e-9).all()
    torch.testing.assert_close(sol.rel_gap, rel, rtol=1e-3, atol=1e-15)


def _sparse_problem(seed):
    """200 models, 150 features, 3 targets with ~20 % of the features in their truth, λ = 0.05·λmax."""
    rng = np.random.default_rng(seed)
    m, d, n = 200, 150, 3
    X = (rng.random((m, d)) < 0.5).astype(float)
    y = X @ (rng.normal(size=(d, n)) * (rng.random((d, n)) < 0.2)) + 0.5 * rng.normal(size=(m, n))
    P = gram_problem(X, y)
    return X, y, P, 0.05 * P.C.abs().amax(0)


@pytest.mark.parametrize("p_min", [4, 10_000])
def test_working_sets_grow_until_the_full_gap_certifies(monkeypatch, p_min):
    """From w = 0 with sets of at least 2 features, each column's working set must grow in many
    rounds to reach sklearn's optimum (p_min = 4: a column whose set outgrows 4 features is
    handed to the full problem; 10,000: every column stays in sub-problems). The reported gap is
    the full problem's, recomputed here independently."""
    X, y, P, lam = _sparse_problem(5)
    d, n = X.shape[1], y.shape[1]
    monkeypatch.setattr(workingset, "P0", 2)
    monkeypatch.setattr(workingset, "P_MIN", p_min)
    monkeypatch.setattr(workingset, "SUB_SHARE", 0.0)
    sizes = []
    real = workingset.grow
    monkeypatch.setattr(workingset, "grow", lambda *a: (lambda M: (sizes.append(M.sum(0).tolist()), M)[1])(real(*a)))
    sol = workingset.lasso_workingset(P, lam, torch.zeros(d, n, dtype=torch.float64), tol=1e-10, max_iter=100000)
    assert len(sizes) >= (4 if p_min > d else 2) and sizes[0] == [2] * n    # grown round after round from 2
    _, gap, _ = lasso_objective_gap(sol.W, P.matvec(sol.W, torch.arange(n)), P.C, P.s, lam)
    rel = gap / (0.5 * P.s)
    assert sol.converged.all() and (rel <= 1e-10).all()
    torch.testing.assert_close(sol.rel_gap, rel, rtol=1e-3, atol=1e-15)
    for j in range(n):
        sk = Lasso(alpha=float(lam[j]), tol=1e-14, max_iter=1_000_000).fit(X, y[:, j])
        np.testing.assert_allclose(sol.W[:, j].numpy(), sk.coef_, atol=1e-6)
    if p_min > d:
        assert max(max(s) for s in sizes) < d                       # solved on sets smaller than d


def test_the_set_bound_follows_the_columns_still_open(monkeypatch):
    """9 columns on one Gram: 8 need one feature and converge in the first rounds; column 0 needs
    ~35. With SUB_SHARE·d/√k the bound is 25 features for the whole block (k = 9) and 75 once it is
    the only column open: its set (54) stays a sub-problem, never handed to the full problem
    (the whole block's bound handed it over), and the result is sklearn's."""
    rng = np.random.default_rng(7)
    m, d, n = 300, 150, 9
    X = (rng.random((m, d)) < 0.5).astype(float)
    th = np.zeros((d, n))
    th[:, 0] = rng.normal(size=d)
    for j in range(1, n):
        th[j, j] = 3.0
    y = X @ th + 0.3 * rng.normal(size=(m, n))
    P = gram_problem(X, y)
    lam = P.C.abs().amax(0) * torch.tensor([0.3] + [0.5] * (n - 1), dtype=torch.float64)
    monkeypatch.setattr(workingset, "P0", 2)
    monkeypatch.setattr(workingset, "P_MIN", 4)
    monkeypatch.setattr(workingset, "SUB_SHARE", 0.5)
    full = []
    real = workingset.lasso_activeset
    monkeypatch.setattr(workingset, "lasso_activeset", lambda Q, *a: (full.append(Q.n), real(Q, *a))[1])
    sizes = []
    grow = workingset.grow
    monkeypatch.setattr(workingset, "grow", lambda *a: (lambda M: (sizes.append(M.sum(0).tolist()), M)[1])(grow(*a)))
    sol = workingset.lasso_workingset(P, lam, torch.zeros(d, n, dtype=torch.float64), tol=1e-10, max_iter=100000)
    assert not full and sol.converged.all()
    assert max(s[0] for s in sizes if len(s) == 1) > 25          # past the whole block's bound, alone
    sk = Lasso(alpha=float(lam[0]), tol=1e-14, max_iter=1_000_000).fit(X, y[:, 0])
    np.testing.assert_allclose(sol.W[:, 0].numpy(), sk.coef_, atol=1e-6)


def test_columns_still_open_after_the_last_round_go_to_the_full_problem(monkeypatch):
    """A column the working-set rounds leave open (one round allowed here) is solved on the full
    problem, not reported unconverged: every column converges to sklearn's optimum."""
    X, y, P, lam = _sparse_problem(13)
    d, n = X.shape[1], y.shape[1]
    monkeypatch.setattr(workingset, "P0", 2)
    monkeypatch.setattr(workingset, "P_MIN", 10_000)
    monkeypatch.setattr(workingset, "MAX_OUTER", 1)
    sol = workingset.lasso_workingset(P, lam, torch.zeros(d, n, dtype=torch.float64), tol=1e-10, max_iter=100000)
    assert sol.converged.all()
    for j in range(n):
        sk = Lasso(alpha=float(lam[j]), tol=1e-14, max_iter=1_000_000).fit(X, y[:, j])
        np.testing.assert_allclose(sol.W[:, j].numpy(), sk.coef_, atol=1e-6)


def test_the_solver_auto_stands_for_is_recorded(tmp_path):
    """'auto' runs FISTA + Newton-CG on test targets (fit models outnumber train examples) and
    working sets on train targets; 'fista' and 'activeset' run FISTA on train targets; fit_runs
    says which."""
    rng = np.random.default_rng(1)
    d, nt = 30, 2
    X = rng.random((80, d)) < 0.5
    Y = (X @ rng.normal(size=(d, d + nt)) + rng.normal(size=(80, d + nt))).astype(np.float32)
    st = Store.create(tmp_path / "s", train_size=d, test_size=nt)
    st.append("e", 0.5, X, Y, np.arange(d + nt), roles=np.array(["fit"] * 60 + ["val"] * 20, dtype=object),
              check_alpha=False)
    runs = [fit(st, "e", 0.5, n_lambdas=3, targets="all", progress=False, solver=s).fit_id
            for s in ("auto", "fista", "activeset")]
    con = st.connect()
    rt = [json.loads(con.sql("SELECT params FROM fit_runs WHERE fit_id = $f", params={"f": f}).fetchall()[0][0])
          ["runtime"]["solver"] for f in runs]
    assert rt[0]["test"] == rt[2]["test"] and rt[0]["test"].startswith("fista with anchored products, then batched")
    assert rt[1]["test"] == "fista with anchored products"
    assert rt[0]["train"].startswith("working sets on eq. 9 sub-Grams")
    assert all(r["train"].startswith("fista with anchored products (eq. 9") for r in rt[1:])


@pytest.mark.parametrize("sub_bytes,kernel", [(1 << 30, "float"), (4 * 3 * 12 ** 2, "float"), (1 << 30, "int8"),
                                               (4 * 3 * 12 ** 2, "int8")])
def test_train_targets_by_working_sets_match_sklearn_where_models_are_fewer_than_features(tmp_path, monkeypatch,
                                                                                         sub_bytes, kernel):
    """Train targets (eq. 9: each its own rows) with m = 110 fit + val models < d = 150: working
    sets grown from 2 features over several rounds, on sub-Grams formed from the masks' bits, must
    give sklearn's Lasso on each target's rows at every λ of the path and at the refit. sub_bytes
    tiny: sets are capped near 12 features, so most columns are handed to the full eq. 9 problem
    (FISTA, then feature-sign steps whose gradients are products with the masks). kernel: the mask rows as int8 (integer products and sub-Gram counts) or float chunks."""
    use_kernel(monkeypatch, kernel)
    rng = np.random.default_rng(3)
    m, d, nt = 140, 150, 1
    X = rng.random((m, d)) < 0.5
    th = rng.normal(size=(d, d + nt)) * (rng.random((d, d + nt)) < 0.1)
    Y = (X @ th + 0.5 * rng.normal(size=(m, d + nt)) + 1).astype(np.float32)
    roles = np.array(["fit"] * 100 + ["val"] * 10 + ["eval"] * 30, dtype=object)
    st = Store.create(tmp_path / "s", train_size=d, test_size=nt)
    st.append("e", 0.5, X, Y, np.arange(d + nt), roles=roles, check_alpha=False)
    monkeypatch.setattr(workingset, "P0", 2)
    monkeypatch.setattr(workingset, "P_MIN", 4)
    monkeypatch.setattr(workingset, "SUB_BYTES", sub_bytes)
    sizes = []
    real = workingset.grow
    monkeypatch.setattr(workingset, "grow", lambda *a: (lambda M: (sizes.append(M.sum(0).max()), M)[1])(real(*a)))
    full = []                       # a whole eq. 9 problem (cheap_blocks: not a sub-problem): FISTA, then steps
    real_solve = workingset.lasso_activeset
    monkeypatch.setattr(workingset, "lasso_activeset", lambda P, *a: (full.append(P.n) if P.cheap_blocks else None,
                                                                       real_solve(P, *a))[1])
    monkeypatch.setattr(activeset, "FISTA_FIRST", 5)     # the full problem's feature-sign steps come early
    steps = []                      # feature-sign steps on a full eq. 9 problem: gradients by products, no columns
    real_step = activeset.newton_column
    monkeypatch.setattr(activeset, "newton_column", lambda P, *a: (
        steps.append(1) if P.columns is None and P.cheap_blocks else None, real_step(P, *a))[1])
    targets = [3, 40, 77, 120]
    r = fit(st, "e", 0.5, targets=targets, n_lambdas=5, lambda_min_ratio=0.05, dtype="float64", tol=1e-10,
            max_iter=100000, keep_path=True, progress=False)
    assert len(sizes) >= (8 if sub_bytes > 1e6 else 3) and min(sizes) == 2 and max(sizes) > 12   # grown round by round
    assert (not full) if sub_bytes > 1e6 else full      # solved on sub-Grams alone, or handed to the full problem
    assert bool(steps) == (sub_bytes < 1e6)
    con = st.connect()
    fits = con.sql(f"SELECT target_id, lam, selected, bias, n_models, converged FROM fits WHERE fit_id = {r.fit_id}"
                   ).fetchnumpy()
    w = con.sql(f"SELECT target_id, lam, train_id, weight FROM weights WHERE fit_id = {r.fit_id}").fetchnumpy()
    assert fits["converged"].all() and sorted(set(fits["target_id"].tolist())) == targets
    for i in range(fits["lam"].size):
        t, lam, sel = int(fits["target_id"][i]), float(fits["lam"][i]), bool(fits["selected"][i])
        rows = np.flatnonzero(((roles == "fit") | ((roles == "val") & sel)) & ~X[:, t])
        assert fits["n_models"][i] == rows.size
        Xa, ya = X[rows].astype(float), Y[rows, t].astype(float)
        sk = Lasso(alpha=lam, tol=1e-12, max_iter=1_000_000).fit(Xa, ya)
        k = (w["target_id"] == t) & (w["lam"] == lam)
        wv = np.zeros(d)
        wv[w["train_id"][k]] = w["weight"][k]
        ref = lasso_objective(Xa, ya, sk.coef_, sk.intercept_, lam)
        assert lasso_objective(Xa, ya, wv, fits["bias"][i], lam) - ref <= 1e-7 * ref, (t, lam)
        np.testing.assert_allclose(wv, sk.coef_, atol=1e-4)
        assert wv[t] == 0


@pytest.mark.parametrize("int8", [False, True])
def test_eq9_sub_grams_are_the_centred_gram_of_each_targets_rows(int8):
    """RowBlock.block: H_j[S][:, S] for target j = the centred Gram over the models without j,
    divided by their number, as numpy computes it; padded with repeated features, columns in any
    order; from int8 rows' integer counts or float chunks."""
    from dmstore.fit.blocks import RowBlock
    from dmstore.fit.operators import PackedRows
    rng = np.random.default_rng(4)
    m, d = 57, 21
    X = rng.random((m, d)) < 0.5
    Y = torch.as_tensor(rng.normal(size=(m, 3)))
    tids = np.array([2, 9, 15])
    rows = PackedRows(np.packbits(X, axis=1), d, torch.device("cpu"), torch.float64, int8=int8)
    blk = RowBlock({"fit": rows, "val": None}, {"fit": Y, "val": None}, torch.as_tensor(tids), torch.float64)
    idx = torch.tensor([[0, 4, 9, 20], [5, 6, 6, 1], [15, 3, 11, 12]])
    cols = torch.tensor([1, 0, 2])
    H = blk.block("fit")(idx, cols)
    for b in range(3):
        t = tids[int(cols[b])]
        Xa = X[~X[:, t]].astype(float)
        Xc = Xa - Xa.mean(0)
        ref = (Xc.T @ Xc / Xa.shape[0])[np.ix_(idx[b].numpy(), idx[b].numpy())]
        np.testing.assert_allclose(H[b].numpy(), ref, rtol=1e-12, atol=1e-14)
