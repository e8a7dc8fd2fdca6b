"""Batched Newton–CG steps (`fit.newton_cg`) at the dense end of the λ path, where models are not
≫ features. Oracle: scikit-learn's Lasso."""
import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso

from dmstore.fit import activeset, newton_cg
from dmstore.fit.activeset import resolve_solver
from dmstore.fit.solvers import Problem, gram_matvec, lasso_solve, lipschitz_gram
from dmstore.testing import alpha_masks


def _problem(d, m, n, seed=0):
    rng = np.random.default_rng(seed)
    X = alpha_masks(rng, m, d, 0.5).astype(np.float64)
    theta = rng.normal(size=(d, n)) * (rng.random((d, n)) < 0.1)
    Y = X @ theta + 2 * rng.normal(size=(m, n))
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    G = torch.as_tensor(Xc.T @ Xc / m).float()
    L = lipschitz_gram(G)
    P = Problem(gram_matvec(G), torch.as_tensor(Xc.T @ Yc / m).float(), torch.as_tensor((Yc ** 2).sum(0) / m).float(),
                torch.full((n,), L, dtype=torch.float32), lambda idx, j=None: G[:, idx], exact=True)
    fac = newton_cg.preconditioner(G, L)
    P.factor = lambda: fac
    return P, X, Y


@pytest.mark.parametrize("low", [None, "bfloat16"])
def test_newton_cg_walks_the_dense_end_of_the_path_like_sklearn(monkeypatch, low):
    """d/m = 0.83, masks of exactly αd ones (H singular along the ones), a 10-λ path to 10⁻³·λmax
    (supports up to 98 % of the features): at each λ, 100 FISTA iterations from the previous λ,
    then Newton–CG certifies every column to 1e-7 within 8 steps; the weights are sklearn's at the
    dense end, where FISTA alone is still open after 1,000 iterations. The same with the
    preconditioner and CG's products in bfloat16 (what `low_precision` picks where that GEMM is
    the faster)."""
    monkeypatch.setitem(newton_cg._LOW, "cpu", {"dtype": low, "float32_gflops": 1.0, "bfloat16_gflops": 1.0})
    d, m, n = 250, 300, 4
    P, X, Y = _problem(d, m, n)
    P.low = torch.bfloat16 if low else None      # CG's products with H in bfloat16 too
    assert P.factor().dtype == (torch.bfloat16 if low else torch.float32)
    W = torch.zeros_like(P.C)
    for r in 1e-3 ** np.linspace(0, 1, 10):
        lam = P.C.abs().amax(0) * float(r)
        start = lasso_solve(P, lam, W, 1e-7, 100)
        sol = newton_cg.newton_cg(P, lam, start.W, 1e-7, P.factor())
        # bfloat16 CG directions (and FISTA's start) cost a step or two at the dense end (10 measured)
        assert sol.converged.all() and (sol.n_iter <= (12 if low else 8)).all(), (r, sol.rel_gap, sol.n_iter)
        W = sol.W
    assert (W.ne(0).sum(0) > 0.95 * d).all()
    scale = float(W.abs().max())
    for j in range(n):
        sk = Lasso(alpha=float(lam[j]), tol=1e-12, max_iter=1_000_000).fit(X, Y[:, j])
        np.testing.assert_allclose(W[:, j].numpy(), sk.coef_, atol=2e-4 * scale)
    assert not lasso_solve(P, lam, torch.zeros_like(P.C), 1e-7, 1000).converged.all()


def test_activeset_hands_the_open_columns_to_newton_cg(monkeypatch):
    """`lasso_activeset` with a preconditioner runs Newton–CG after CG_AFTER FISTA iterations and
    certifies every column; without one it keeps the per-column direct steps. Both agree."""
    d, m, n = 200, 240, 3
    P, X, Y = _problem(d, m, n, seed=2)
    lam = P.C.abs().amax(0) * 1e-3
    calls = []
    real = newton_cg.newton_cg
    monkeypatch.setattr(activeset, "newton_cg", lambda *a, **k: (calls.append(a[1].numel()), real(*a, **k))[1])
    with_cg = activeset.lasso_activeset(P, lam, torch.zeros_like(P.C), 1e-7, 1000)
    assert calls and with_cg.converged.all()
    P.factor = None
    direct = activeset.lasso_activeset(P, lam, torch.zeros_like(P.C), 1e-7, 1000)
    assert len(calls) == 1 and direct.converged.all()
    np.testing.assert_allclose(with_cg.W.numpy(), direct.W.numpy(), atol=1e-4 * float(direct.W.abs().max()))


def test_auto_is_chosen_by_the_shape():
    """Newton–CG where the fit models outnumber the train examples, working sets where they do
    not (H singular: supports bounded by m)."""
    assert resolve_solver("auto", 1000, 1200) == "activeset"
    assert resolve_solver("auto", 1000, 800) == "workingset"
    assert resolve_solver("fista", 1000, 1200) == "fista"


def test_the_low_precision_probe_measures_both_kernels():
    out = newton_cg.low_precision("cpu")
    assert out["float32_gflops"] > 0 and out["dtype"] in (None, "bfloat16")
    if out["dtype"]:
        assert out["bfloat16_gflops"] > newton_cg.LOW_MARGIN * out["float32_gflops"]


def test_the_preconditioner_is_the_inverse_in_row_major_order(monkeypatch):
    """(G + εL·I)⁻¹ to float64 precision (numpy's inverse), stored row-major: LAPACK returns it
    column-major, and a GEMM on that layout ran at half the speed (bfloat16, d = 12,000)."""
    monkeypatch.setitem(newton_cg._LOW, "cpu", {"dtype": None})
    rng = np.random.default_rng(3)
    A = rng.normal(size=(60, 40))
    G = torch.as_tensor(A.T @ A / 60)
    fac = newton_cg.preconditioner(G, 2.0)
    assert fac.is_contiguous() and fac.dtype == torch.float64
    want = np.linalg.inv(G.numpy() + newton_cg.EPS * 2.0 * np.eye(40))
    np.testing.assert_allclose(fac.numpy(), want, rtol=1e-9, atol=1e-9 * np.abs(want).max())
