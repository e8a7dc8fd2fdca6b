"""Exact integer products with 0/1 mask rows (`gram.int8_matmul`, `PackedRows` with int8 rows):
against numpy in float64 and exact integers, on shapes no multiple of 8, columns of very different
magnitudes, zero columns, sparse and dense right-hand sides, and the float path on the same rows."""
import numpy as np
import pytest
import torch

from dmstore.fit import gram
from dmstore.fit.operators import PackedRows

from .test_gram import masks          # 0/1 masks with an all-zero (3) and an all-one (5) feature


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (5, 7, 3), (37, 531, 13), (300, 4099, 9)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_int8_matmul_is_within_its_fixed_point_bound(m, k, n, dtype):
    """|A B − numpy's float64 A B| ≤ K·2^(2−7L)·max|B_j| (B's rounding to L base-128 digits) plus
    float64's rounding of the recombined sum, per column; zero columns give exact zeros."""
    rng = np.random.default_rng(m + k)
    X = masks(m, max(k, 6), seed=k)[:, :k]
    B = rng.normal(size=(k, n)) * np.logspace(-30, 30, n)[None, :]
    B[:, 0] = 0
    B = torch.as_tensor(B).to(dtype)
    ref = X.astype(np.float64) @ B.double().numpy()
    got = gram.int8_matmul(gram.pad8(torch.as_tensor(X).to(torch.int8)), B)[:m]
    assert got.dtype == dtype
    L = gram.LIMBS[dtype]
    top = B.double().abs().amax(0).numpy()
    terms = X.astype(np.float64) @ np.abs(B.double().numpy())
    bound = k * 2.0 ** (2 - 7 * L) * top[None, :] + 4e-16 * terms
    if dtype == torch.float32:
        bound = bound + 2.0 ** -24 * np.abs(ref)               # the float32 result's own rounding
    assert (np.abs(got.double().numpy() - ref) <= bound).all()
    assert (got[:, 0] == 0).all()


def test_int8_matmul_is_exact_on_integers():
    """Integer right-hand sides (counts, 0/1 eligibilities) have no fixed-point rounding: the
    product equals numpy's int64 one exactly."""
    X = masks(45, 70, seed=1)
    B = np.random.default_rng(2).integers(-1000, 1000, size=(70, 5))
    got = gram.int8_matmul(gram.pad8(torch.as_tensor(X).to(torch.int8)), torch.as_tensor(B, dtype=torch.float64))
    assert np.array_equal(got[:45].numpy(), (X.astype(np.int64) @ B).astype(np.float64))


@pytest.mark.parametrize("m,d", [(37, 13), (203, 1001)])
def test_packed_rows_int8_and_float_products_agree_with_numpy(m, d):
    """Every product of the data-space operators, on int8 rows and on float chunks of the same
    rows, against numpy in float64: X W (W dense, and W with few non-zero rows: the gathered-support
    path), Xᵀ R, Xᵀ f(X W), X[:, t], and the exact counts Σ e_r x_r,t x_r,tᵀ."""
    X = masks(m, d, seed=m)
    rng = np.random.default_rng(d)
    packed = np.packbits(X, axis=1)
    Xf = X.astype(np.float64)
    rows = {k: PackedRows(packed, d, "cpu", torch.float64, int8=k == "int8") for k in ("int8", "float")}
    assert rows["int8"].kernel == "int8" and rows["float"].kernel == "float64"
    W = rng.normal(size=(d, 4))
    Ws = W * (np.arange(d) % 7 == 2)[:, None]                  # a few non-zero rows: the gathered path
    R = rng.normal(size=(m, 4))
    shift = rng.normal(size=4)
    t = np.array([5, 0, 3, d - 1, 5])
    e = rng.random(m) < 0.7
    for kind, P in rows.items():
        for w in (W, Ws):
            np.testing.assert_allclose(P.matmul(torch.as_tensor(w)).numpy(), Xf @ w, rtol=1e-12, atol=1e-12)
            got = P.normal_matvec(torch.as_tensor(w), lambda lo, hi, r: r - torch.as_tensor(shift))
            np.testing.assert_allclose(got.numpy(), Xf.T @ (Xf @ w - shift), rtol=1e-11, atol=1e-10)
        np.testing.assert_allclose(P.rmatmul(torch.as_tensor(R)).numpy(), Xf.T @ R, rtol=1e-12, atol=1e-12)
        assert np.array_equal(P.cols(t).numpy(), Xf[:, t]), kind
    ti = torch.as_tensor(t)
    Xt = X[:, t].astype(np.int64)
    assert np.array_equal(rows["int8"].count(ti).numpy(), (Xt.T @ Xt).astype(np.float64))
    assert np.array_equal(rows["int8"].count(ti, torch.as_tensor(e)).numpy(),
                          (Xt[e].T @ Xt[e]).astype(np.float64))
    both = rows["int8"].concat(rows["float"])
    assert both.kernel == "int8" and np.array_equal(both.cols(t).numpy(), np.concatenate([Xf, Xf])[:, t])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_int8_rows_agree_with_numpy():
    """The same products on CUDA's integer kernel (cuBLASLt's `_int_mm`): dense and gathered X W,
    Xᵀ R and exact counts, against numpy."""
    m, d = 203, 1001
    X = masks(m, d, seed=7)
    Xf = X.astype(np.float64)
    rng = np.random.default_rng(1)
    P = PackedRows(np.packbits(X, axis=1), d, torch.device("cuda"), torch.float64, int8=True)
    W = rng.normal(size=(d, 5))
    for w in (W, W * (np.arange(d) % 9 == 1)[:, None]):
        np.testing.assert_allclose(P.matmul(torch.as_tensor(w, device="cuda")).cpu().numpy(), Xf @ w, rtol=1e-12,
                                   atol=1e-12)
    R = rng.normal(size=(m, 5))
    np.testing.assert_allclose(P.rmatmul(torch.as_tensor(R, device="cuda")).cpu().numpy(), Xf.T @ R, rtol=1e-12,
                               atol=1e-12)
    t = np.array([5, 0, 3, d - 1])
    assert np.array_equal(P.count(torch.as_tensor(t, device="cuda")).cpu().numpy(),
                          (X[:, t].astype(np.int64).T @ X[:, t].astype(np.int64)).astype(np.float64))
