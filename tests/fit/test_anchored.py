"""Anchored products (solvers module doc): float32 operators, float64 iterates, so a float32 fit
reaches duality gaps below float32's own rounding of H·W. Oracles: the same problem solved in
float64, and scikit-learn's Lasso."""
import numpy as np
import torch
from sklearn.linear_model import Lasso

from dmstore.fit.operators import PackedRows, ValRows
from dmstore.fit.solvers import Problem, gram_matvec, lasso_objective_gap, lasso_solve, lipschitz_gram
from dmstore.testing import alpha_masks


def _problem(X, Y, dt, exact):
    m = X.shape[0]
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    H = torch.as_tensor(Xc.T @ Xc / m).to(dt)
    C = torch.as_tensor(Xc.T @ Yc / m).to(dt)
    s = torch.as_tensor((Yc ** 2).sum(0) / m).to(dt)
    L = torch.full((Y.shape[1],), lipschitz_gram(H), dtype=dt)
    return Problem(gram_matvec(H), C, s, L, exact=exact), H


def _case(seed):
    """d/m = 0.83, 4 targets, λ = 0.02·λmax: (X, Y, the float32 problem and its H, λ, the float64
    solution to 1e-9)."""
    rng = np.random.default_rng(seed)
    d, m, n = 300, 360, 4
    X = alpha_masks(rng, m, d, 0.5).astype(np.float64)
    theta = rng.normal(size=(d, n)) * (rng.random((d, n)) < 0.1)
    Y = X @ theta + 3 * rng.normal(size=(m, n))
    P32, H32 = _problem(X, Y, torch.float32, exact=True)
    P64, _ = _problem(X, Y, torch.float64, exact=False)
    lam = P64.C.abs().amax(0) * 0.02
    ref = lasso_solve(P64, lam, torch.zeros_like(P64.C), 1e-9, 20000)
    return X, Y, P32, H32, lam, ref


def test_float32_fits_reach_gaps_below_the_float32_floor():
    """d/m = 0.83 (the paper's shape on a workstation), tol 1e-7: plain float32 FISTA stalls at
    its rounding floor (5,000 iterations, every column open, measured); anchored float32 iterates
    converge in about as many iterations as float64 and to the same weights, certified again here
    by a float64 gap of the returned weights on the float32 problem."""
    X, Y, P32, H32, lam, ref = _case(0)
    n = Y.shape[1]
    sol = lasso_solve(P32, lam.float(), torch.zeros_like(P32.C), 1e-7, 5000)
    assert ref.converged.all() and sol.converged.all()
    assert (sol.n_iter <= 2 * ref.n_iter + 100).all(), (sol.n_iter, ref.n_iter)
    W = sol.W.double()
    _, gap, _ = lasso_objective_gap(W, H32.double() @ W, P32.C.double(), P32.s.double(), lam)
    assert (gap / (0.5 * P32.s.double()) <= 5e-7).all()      # 1e-7 + the rounding of W to float32
    scale = float(ref.W.abs().max())
    np.testing.assert_allclose(sol.W.double().numpy(), ref.W.numpy(), atol=1e-4 * scale)
    for j in range(n):
        sk = Lasso(alpha=float(lam[j]), tol=1e-12, max_iter=200_000).fit(X, Y[:, j])
        np.testing.assert_allclose(ref.W[:, j].numpy(), sk.coef_, atol=1e-5 * scale)


def test_bfloat16_difference_products_keep_the_exact_certificate():
    """`Problem.low` = bfloat16 (what the pipeline sets where that GEMM is the faster): FISTA's
    products of the difference from the anchor run in bfloat16 (0.4 % rounding), yet a column
    leaves only on an exact product: the float64 gap of the returned weights certifies them (tol
    plus the rounding of W to float32) and they are the float64 solution's; a column stopped by
    max_iter reports its exact gap, not the bfloat16 estimate."""
    X, Y, P32, H32, lam, ref = _case(1)
    plain = lasso_solve(P32, lam.float(), torch.zeros_like(P32.C), 1e-7, 5000)
    calls = []
    mv = P32.matvec
    P32.matvec = lambda W, c: (calls.append(W.dtype), mv(W, c))[1]
    P32.low = torch.bfloat16
    sol = lasso_solve(P32, lam.float(), torch.zeros_like(P32.C), 1e-7, 5000)
    assert sol.converged.all() and torch.bfloat16 in calls and torch.float64 in calls
    assert calls.count(torch.bfloat16) > 5 * calls.count(torch.float64)
    # the price of 0.4 % products on a cold start at d = 300 (measured 2.7-4.2x; why the pipeline
    # uses them only from blocks.LOW_MIN_D, warm-started along the path: +12 % at d = 12,000)
    assert (sol.n_iter <= 5 * plain.n_iter).all(), (sol.n_iter, plain.n_iter)
    W = sol.W.double()
    _, gap, _ = lasso_objective_gap(W, H32.double() @ W, P32.C.double(), P32.s.double(), lam)
    rel = gap / (0.5 * P32.s.double())
    assert (rel <= 5e-7).all()                                # 1e-7 + the rounding of W to float32
    np.testing.assert_allclose(sol.W.double().numpy(), ref.W.numpy(), atol=1e-4 * float(ref.W.abs().max()))
    capped = lasso_solve(P32, lam.float() * 0.05, torch.zeros_like(P32.C), 1e-12, 37)   # leaves by the cap
    assert not capped.converged.any()
    W = capped.W.double()
    _, gap, _ = lasso_objective_gap(W, H32.double() @ W, P32.C.double(), P32.s.double(), lam * 0.05)
    np.testing.assert_allclose(capped.rel_gap.numpy(), (gap / (0.5 * P32.s.double())).numpy(), rtol=1e-3)

def test_packed_operators_compute_in_the_dtype_of_their_input():
    """The mask operators take float64 input (an anchor product) and compute in float64: equal to
    numpy's float64 products; float32 input stays float32."""
    rng = np.random.default_rng(1)
    m, d, n = 70, 45, 3
    X = rng.random((m, d)) < 0.5
    rows = PackedRows(np.packbits(X, axis=1), d, "cpu", torch.float32)
    W = rng.normal(size=(d, n))
    out = rows.normal_matvec(torch.as_tensor(W), lambda lo, hi, R: R)
    assert out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), X.T @ (X @ W), rtol=1e-12)
    assert rows.normal_matvec(torch.as_tensor(W).float(), lambda lo, hi, R: R).dtype == torch.float32
    mu = torch.as_tensor(X.mean(0)).float()
    val = ValRows(rows, torch.zeros(m, n))
    Xc = X - X.mean(0).astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(val.gram_matvec(torch.as_tensor(W), mu).numpy(), Xc.T @ (Xc @ W), rtol=1e-10)
    G = torch.as_tensor(X.T @ X / m).float()
    mv = gram_matvec(G)
    Ws = W * (rng.random((d, 1)) < 0.3)                               # the sparse (active rows) branch too
    for V in (W, Ws):
        got = mv(torch.as_tensor(V), torch.arange(n))
        assert got.dtype == torch.float64
        np.testing.assert_allclose(got.numpy(), G.double().numpy() @ V, rtol=1e-12, atol=1e-12)
