"""Exact Gram counts of 0/1 masks, bit-equal to numpy's int64 product: every kernel, chunk sizes
that divide nothing, all-zero and all-one columns, the float32 → float64 promotion before counts
pass what float32 holds, and the kernel a fit used recorded in fit_runs."""
import json

import numpy as np
import pytest
import torch

from dmstore import Store
from dmstore.fit import fit, gram, newton_cg
from dmstore.fit.stats import Stats


def masks(m, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((m, d)) < 0.5
    X[:, 3] = False        # a feature no model was trained on
    X[:, 5] = True         # one every model was trained on
    return X


def stream(acc, X, rows):
    for lo in range(0, X.shape[0], rows):
        acc.add(torch.as_tensor(X[lo:lo + rows]))
    return acc


@pytest.mark.parametrize("kernel", ["float32", "float64", "int8"])
@pytest.mark.parametrize("rows", [1, 37, 1000])
def test_counts_bit_equal_to_numpy(kernel, rows):
    X = masks(531, 43)                         # 531 = 3²·59: no chunk size divides it
    acc = stream(gram.Accumulator(43, "cpu", torch.float32, kernel=kernel), X, rows)
    ref = X.astype(np.int64).T @ X.astype(np.int64)
    assert acc.m == 531
    got = acc.xx.numpy()
    assert np.array_equal(got.astype(np.int64), ref) and np.array_equal(got, ref.astype(got.dtype))
    assert (got[3] == 0).all() and got[5, 5] == 531 and np.array_equal(got[5], X.sum(0))


def test_int8_kernel_pads_odd_shapes():
    """_int_mm needs multiples of 8 and more than 16 rows: 1, 9 and 17 rows of 13 features."""
    for r in (1, 9, 17):
        X = torch.as_tensor(masks(r, 13, seed=r))
        assert torch.equal(gram.int8_gram(X).long(), X.long().T @ X.long())


@pytest.mark.parametrize("kernel", ["float32", "int8"])
def test_promotes_to_float64_before_counts_pass_float32(monkeypatch, kernel):
    """With float32's exact limit lowered to 64 models, a float32 chunk never holds more than 63
    rows and the accumulator is float64 before its count reaches 64: the counts stay exact."""
    monkeypatch.setattr(gram, "EXACT", {torch.float32: 64, torch.float64: 1 << 53})
    X = masks(300, 17, seed=2)
    acc = gram.Accumulator(17, "cpu", torch.float32, kernel=kernel)
    stream(acc, X[:50], 50)
    assert acc.xx.dtype == torch.float32
    stream(acc, X[50:], 250)                   # one chunk of 250 rows: split by the float32 kernel
    assert acc.xx.dtype == torch.float64
    assert np.array_equal(acc.xx.numpy(), (X.astype(np.int64).T @ X.astype(np.int64)).astype(np.float64))


def test_cpu_kernel_choice_follows_the_probe(monkeypatch):
    """On the CPU the integer path is chosen exactly when the probe measured it faster (a VNNI
    CPU); the probe's counts are checked against float32 before it may be chosen."""
    probe = gram.probe_cpu()
    assert probe["float32_gops"] > 0
    assert gram.kernel_for("cpu", torch.float32) == ("int8" if probe["int8"] else "float32")
    for fast in (True, False):
        monkeypatch.setattr(gram, "_cpu_choice", dict(probe, int8=fast))
        assert gram.kernel_for("cpu", torch.float64) == ("int8" if fast else "float64")


def test_stats_gram_is_the_accumulators():
    X = masks(100, 9, seed=4)
    S = Stats.zeros(9, 2, "cpu", gram=True, gram_dtype=torch.float32)
    for lo in (0, 33, 66):
        S.add(torch.as_tensor(X[lo:lo + 33 + (lo == 66)]).float(), torch.zeros(33 + (lo == 66), 2))
    assert S.m == 100 and np.array_equal(S.xx.numpy(), X.T.astype(np.float32) @ X.astype(np.float32))


def test_the_kernel_and_solver_a_fit_used_are_recorded(tmp_path):
    st = Store.create(tmp_path / "s", train_size=12, test_size=2)
    rng = np.random.default_rng(0)
    X = rng.random((80, 12)) < 0.5
    st.append("e", 0.5, X, rng.normal(size=(80, 14)).astype(np.float32), np.arange(14), check_alpha=False)
    r = fit(st, "e", 0.5, targets="all", n_lambdas=3, progress=False)
    params = json.loads(st.connect().sql("SELECT params FROM fit_runs WHERE fit_id = $f",
                                         params={"f": r.fit_id}).fetchall()[0][0])
    rt = params["runtime"]
    assert rt["gram"] == f"{gram.kernel_for('cpu', torch.float32)} products, float32 counts"
    probe = rt["gram_probe"]
    assert probe["float32_gops"] > 0 and probe["int8"] == (rt["gram"].startswith("int8"))
    assert set(rt["solver"]) == {"test", "train"} and "feature-sign" in rt["solver"]["test"]
    pre = rt["preconditioner"]      # 80 fit models > d = 12: Newton-CG's preconditioner was built
    assert pre["dtype"] == (newton_cg.low_precision("cpu")["dtype"] or "float32") and pre["float32_gflops"] > 0
    again = fit(st, "e", 0.5, targets="all", n_lambdas=3, progress=False, reuse=True)
    assert again.fit_id == r.fit_id          # run-time choices are not part of the fit's identity


def test_low_precision_products_are_recorded_and_change_no_result(tmp_path, monkeypatch):
    """Where the bfloat16 GEMM is the faster and d ≥ blocks.LOW_MIN_D (lowered here), FISTA's
    difference products and CG's run in bfloat16 (`Problem.low`), recorded in
    `fit_runs.params.runtime.low_products`; every (target, λ) is still certified by the
    full float64 gap, and the weights are the float32 fit's within the solver's tolerance."""
    from dmstore.fit import blocks
    st = Store.create(tmp_path / "s", train_size=40, test_size=4)
    rng = np.random.default_rng(0)
    X = rng.random((300, 40)) < 0.5
    theta = rng.normal(size=(40, 4)) * (rng.random((40, 4)) < 0.3)
    st.append("e", 0.5, X, (X @ theta + rng.normal(size=(300, 4))).astype(np.float32), np.arange(40, 44),
              check_alpha=False)
    opts = dict(n_lambdas=6, progress=False, tol=1e-7)
    plain = fit(st, "e", 0.5, **opts)
    monkeypatch.setitem(newton_cg._LOW, "cpu", {"dtype": "bfloat16", "float32_gflops": 1.0, "bfloat16_gflops": 4.0})
    monkeypatch.setattr(blocks, "LOW_MIN_D", 8)
    low = fit(st, "e", 0.5, reuse=False, **opts)
    con = st.connect()
    rt = [json.loads(p[0])["runtime"] for p in con.sql("SELECT params FROM fit_runs ORDER BY fit_id").fetchall()]
    assert "low_products" not in rt[0] and rt[1]["low_products"] == {"dtype": "bfloat16", "anchor_every": 30}
    q = "SELECT target_id, lam, converged, rel_gap FROM fits WHERE fit_id = $f ORDER BY target_id, lam"
    a, b = (con.sql(q, params={"f": f}).fetchall() for f in (plain.fit_id, low.fit_id))
    assert len(a) == len(b) == 24 and all(r[2] and r[3] <= 1e-7 for r in b)
    np.testing.assert_allclose(low.weights(), plain.weights(), atol=1e-3 * np.abs(plain.weights()).max())


@pytest.mark.parametrize("pending", [1, 43 * 100, 1 << 30])
def test_int8_rows_wait_for_one_product(monkeypatch, pending):
    """The int8 kernel holds rows until PENDING_BYTES of them (or a read): a whole fit's rows are
    then one product instead of one per chunk; the counts are the same whenever they are taken."""
    monkeypatch.setattr(gram, "PENDING_BYTES", pending)
    calls = []
    real = gram.int8_gram
    monkeypatch.setattr(gram, "int8_gram", lambda X: calls.append(X.shape[0]) or real(X))
    X = masks(531, 43, seed=6)
    acc = stream(gram.Accumulator(43, "cpu", torch.float32, kernel="int8"), X, 37)
    products = {1: 15, 4300: 5, 1 << 30: 1}[pending]     # 15 chunks of 37 rows; a flush per 100 rows
    got = acc.xx.numpy()
    assert np.array_equal(got, (X.astype(np.int64).T @ X.astype(np.int64)).astype(np.float32))
    assert sum(calls) == 531 and len(calls) == products
    assert np.array_equal(acc.xx.numpy(), got) and len(calls) == products    # a second read counts nothing again


@pytest.mark.parametrize("kernel", ["int8", "float32"])
def test_the_fit_and_val_gram_is_numpys(monkeypatch, kernel):
    """The refit's operator on fit + val models (`GramBlock.problem('all')`): the val models'
    share counted by int8 products and centred in float64, or by centred float rows, equals
    numpy's centred Gram of the fit and val masks together, times W."""
    from dmstore.fit import blocks
    from dmstore.fit.operators import PackedRows, ValRows
    from dmstore.fit.solvers import lipschitz_gram
    from dmstore.fit.stats import center_gram_
    monkeypatch.setattr(blocks, "kernel_for", lambda dev, dt: kernel)
    d, n = 45, 3
    rng = np.random.default_rng(8)
    Xf, Xv = masks(310, d, seed=9), masks(71, d, seed=10)
    Yf, Yv = rng.normal(size=(310, n)), rng.normal(size=(71, n))
    S_fit = Stats.zeros(d, n, "cpu", gram=True, gram_dtype=torch.float32)
    S_fit.add(torch.as_tensor(Xf).float(), torch.as_tensor(Yf).float())
    S_val = Stats.zeros(d, n, "cpu", gram=False)
    S_val.add(torch.as_tensor(Xv).float(), torch.as_tensor(Yv).float())
    G = center_gram_(S_fit.xx, S_fit.sx, S_fit.m).float()
    val = ValRows(PackedRows(np.packbits(Xv, axis=1), d, "cpu", torch.float32), torch.as_tensor(Yv).float())
    block = blocks.GramBlock(S_fit, S_val, val, G, lipschitz_gram(G), torch.float32)
    W = rng.normal(size=(d, n))
    got = block.problem("all").matvec(torch.as_tensor(W), torch.arange(n)).numpy()
    Xa = np.vstack([Xf, Xv]).astype(np.float64)
    Xc = Xa - Xa.mean(0)
    want = Xc.T @ Xc / Xa.shape[0] @ W
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_centred_gram_is_exactly_symmetric(dtype):
    """`center_gram_` subtracts sx_i·sx_j/m (the product exact), so the centred Gram is symmetric
    bit for bit — `gram_matvec` computes H W as (WᵀH)ᵀ. Subtracting sx_i·(sx_j/m) left 28,938 of
    these 90,000 float64 entries one rounding apart from their mirror."""
    from dmstore.fit.stats import center_gram_
    X = masks(1237, 300, seed=0)
    xx = torch.as_tensor(X.T.astype(np.float64) @ X).to(dtype)
    sx = torch.as_tensor(X.sum(0).astype(np.float64))
    G = center_gram_(xx, sx, 1237)
    assert torch.equal(G, G.T)
    Xc = X - X.mean(0)
    np.testing.assert_allclose(G.double().numpy(), Xc.T @ Xc / 1237, rtol=0, atol=max(4 * torch.finfo(dtype).eps, 1e-13))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_copies_read_only_the_active_rows_where_few_are(dtype):
    """`gram_matvec` on its float64 / bfloat16 copy of G: W with few non-zero rows (below
    COPY_SPARSE_BELOW) takes G's rows of those features only, many take the whole product; both
    equal the whole product in that dtype."""
    from dmstore.fit import solvers
    d, k = 200, 5
    rng = np.random.default_rng(4)
    A = rng.normal(size=(d, d))
    G = torch.as_tensor((A + A.T) / 2).float()
    mv = solvers.gram_matvec(G)
    for rows in (3, 150):                         # 1.5 % and 75 % of the features active
        W = np.zeros((d, k))
        W[rng.choice(d, rows, replace=False)] = rng.normal(size=(rows, k))
        Wt = torch.as_tensor(W).to(dtype)
        before = solvers.FLOPS["matvec"]
        got = mv(Wt, torch.arange(k))
        assert got.dtype == dtype and got.is_contiguous()
        assert solvers.FLOPS["matvec"] - before == 2 * d * (rows if rows < 0.12 * d else d) * k
        want = G.double() @ Wt.double()
        tol = 1e-12 if dtype == torch.float64 else 2e-2
        np.testing.assert_allclose(got.double().numpy(), want.numpy(), rtol=0, atol=tol * np.abs(want.numpy()).max())
