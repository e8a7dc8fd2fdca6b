"""External attribution scores as fits (issue 18): a synthetic store with a known linear ground
truth; the same scores as .npy target-major, .npy train-major, .pt, a TRAK save directory and
Parquet triples give one fit; its LDS equals numpy/scipy's, its top-k equal numpy's; bad input
is refused naming the file and row, with the store unchanged."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner
from scipy.stats import spearmanr

import dmstore
from dmstore import ConflictError, InputError, Store
from dmstore.cli import cli
from dmstore.engine import export_scores
from dmstore.ingest import ingest_scores
from dmstore.testing import alpha_masks, snapshot

D, N, M_FIT, M_VAL, M_EVAL = 40, 12, 300, 60, 80


@pytest.fixture
def lin(tmp_path):
    """A store whose margins are linear in the mask (θ [d, n_test] plus noise), and noisy scores."""
    rng = np.random.default_rng(11)
    m = M_FIT + M_VAL + M_EVAL
    X = alpha_masks(rng, m, D, 0.5)
    theta = rng.normal(size=(D, D + N)) * (rng.random((D, D + N)) < 0.3)
    Y = (X @ theta + rng.normal(scale=0.5, size=(m, D + N)) + 1).astype(np.float32)
    roles = np.array(["fit"] * M_FIT + ["val"] * M_VAL + ["eval"] * M_EVAL, dtype=object)
    st = Store.create(tmp_path / "s", train_size=D, test_size=N)
    st.append("e", 0.5, X, Y, np.arange(D + N), roles=roles)
    S = (theta[:, D:].T + rng.normal(scale=0.3, size=(N, D))).astype(np.float32)   # [targets, d]
    return st, X, Y, S, tmp_path


def _numpy_fit(X, Y, S, rows=slice(0, M_FIT)):
    """The oracle: per target, least squares of y on s = x·S_j over the fit models (`rows` of
    them; scale kept positive), LDS = mean Spearman over eval models of the calibrated prediction."""
    Xf, Yf = X[rows].astype(float), Y[rows, D:].astype(float)
    s = Xf @ S.T.astype(float)
    scale, bias = [], []
    for j in range(N):
        b = np.cov(s[:, j], Yf[:, j], bias=True)[0, 1] / s[:, j].var()
        b = max(b, 1e-3 * Yf[:, j].std() / s[:, j].std())
        scale.append(b)
        bias.append(Yf[:, j].mean() - b * s[:, j].mean())
    Xe = X[M_FIT + M_VAL:].astype(float)
    pred = Xe @ (S.T * np.array(scale)) + np.array(bias)
    lds = np.mean([spearmanr(pred[:, j], Y[M_FIT + M_VAL:, D + j]).statistic for j in range(N)])
    return np.array(scale), np.array(bias), pred, lds


def _fit_arrays(con, fid):
    f = con.sql("SELECT target_id, bias, scale, nnz, n_models FROM fits WHERE fit_id = $f ORDER BY target_id",
                params={"f": fid}).fetchnumpy()
    w = con.sql("SELECT target_id, train_id, weight FROM weights WHERE fit_id = $f ORDER BY ALL",
                params={"f": fid}).fetchnumpy()
    p = con.sql("SELECT model_id, target_id, predicted FROM eval_predictions WHERE fit_id = $f ORDER BY ALL",
                params={"f": fid}).fetchnumpy()
    return f, w, p


def test_every_format_gives_the_same_fit_and_numpys_lds(lin):
    st, X, Y, S, tmp = lin
    np.save(tmp / "tm.npy", S)
    np.save(tmp / "trm.npy", S.T.copy())
    torch.save(torch.from_numpy(S.T.copy()), tmp / "s.pt")
    trak = tmp / "trak_results"
    (trak / "scores").mkdir(parents=True)
    np.lib.format.open_memmap(trak / "scores" / "exp.mmap", mode="w+", dtype=np.float16, shape=(D, N))[:] = S.T
    (trak / "experiments.json").write_text(json.dumps({"exp": {"num_targets": N, "scores_finalized": 1}}))
    ti, tj = np.nonzero(S.T)
    pq.write_table(pa.table({"target_id": (D + tj).astype(np.int32), "train_id": ti.astype(np.int32),
                             "score": S.T[ti, tj]}), tmp / "triples.parquet")
    fids = {
        "npy": ingest_scores(st, tmp / "tm.npy", "m_tm", "e", 0.5).fit_id,
        "npy_t": ingest_scores(st, tmp / "trm.npy", "m_trm", "e", 0.5, layout="train-major").fit_id,
        "pt": ingest_scores(st, tmp / "s.pt", "m_pt", "e", 0.5, layout="train-major").fit_id,
        "triples": ingest_scores(st, tmp / "triples.parquet", "m_tr", "e", 0.5).fit_id,
    }
    scale, bias, pred, lds = _numpy_fit(X, Y, S)
    con = dmstore.connect(st.root)
    ref = _fit_arrays(con, fids["npy"])
    assert np.allclose(ref[0]["scale"], scale, rtol=1e-6) and np.allclose(ref[0]["bias"], bias, rtol=1e-6, atol=1e-9)
    assert (ref[0]["n_models"] == M_FIT).all() and (ref[0]["nnz"] == D).all()
    Xe_ids = np.arange(M_FIT + M_VAL, M_FIT + M_VAL + M_EVAL)
    assert np.allclose(ref[2]["predicted"].reshape(M_EVAL, N), pred, rtol=1e-5, atol=1e-5)
    assert np.array_equal(np.unique(ref[2]["model_id"]), Xe_ids)
    for name, fid in fids.items():
        got = _fit_arrays(con, fid)
        for a, b in zip(got, ref):
            for c in a:
                assert np.allclose(a[c], b[c], rtol=1e-6, atol=1e-6), (name, c)
    comp = {r[0]: r[1:] for r in con.sql("SELECT fit_id, lds, n_lds, kendall FROM estimator_comparison").fetchall()}
    for fid in fids.values():
        assert comp[fid][0] == pytest.approx(lds, abs=1e-6) and comp[fid][1] == N
    # TRAK's float16 save dir: the same fit up to float16 rounding of the scores
    f16 = ingest_scores(st, trak, "m_trak", "e", 0.5).fit_id
    con = dmstore.connect(st.root)
    assert json.loads(con.sql("SELECT params FROM fit_runs WHERE fit_id = $f", params={"f": f16}).fetchall()[0][0]
                      )["kind"] == "trak"
    assert abs(dmstore.connect(st.root).sql("SELECT lds FROM estimator_comparison WHERE fit_id = $f",
                                            params={"f": f16}).fetchall()[0][0] - lds) < 1e-2


def test_calibration_on_a_seeded_sample_of_fit_models(lin):
    """Past `calibration_models` fit models, the calibration reads a seeded sample of that many
    (fit --models's nested order): scale and bias are numpy's least squares on exactly those
    models, n_models and fit_runs say how many, the sample is part of the identity, and the LDS
    is the full calibration's (a positive scale keeps every ranking)."""
    from dmstore.cli.ingest import scores as scores_cmd
    from dmstore.fit.stats import model_order
    from dmstore.ingest.scores import CALIBRATION_MODELS
    st, X, Y, S, tmp = lin
    np.save(tmp / "tm.npy", S)
    assert next(p for p in scores_cmd.params if p.name == "calibration_models").default == CALIBRATION_MODELS
    full = ingest_scores(st, tmp / "tm.npy", "full", "e", 0.5, calibration_models=None)
    assert ingest_scores(st, tmp / "tm.npy", "full", "e", 0.5).reused     # 300 <= 512: the same fit
    part = ingest_scores(st, tmp / "tm.npy", "part", "e", 0.5, calibration_models=100)
    assert not part.reused and part.fit_id != full.fit_id
    ids = st.models("e", 0.5, "fit", ["model_id"])["model_id"].to_numpy()   # rows 0..M_FIT-1 of X, in order
    sample = np.sort(model_order(ids, 0)[:100])
    scale, bias, pred, lds = _numpy_fit(X, Y, S, rows=np.searchsorted(ids, sample))
    con = dmstore.connect(st.root)
    f, _, p = _fit_arrays(con, part.fit_id)
    assert np.allclose(f["scale"], scale, rtol=1e-6) and np.allclose(f["bias"], bias, rtol=1e-6, atol=1e-9)
    assert (f["n_models"] == 100).all()
    assert np.allclose(p["predicted"].reshape(M_EVAL, N), pred, rtol=1e-5, atol=1e-5)
    run = con.sql("SELECT n_fit, params FROM fit_runs WHERE fit_id = $f", params={"f": part.fit_id}).fetchall()[0]
    assert run[0] == 100 and json.loads(run[1])["calibration_models"] == 100
    assert "calibration_models" not in json.loads(con.sql("SELECT params FROM fit_runs WHERE fit_id = $f",
                                                          params={"f": full.fit_id}).fetchall()[0][0])
    lds_of = dict(con.sql("SELECT fit_id, lds FROM estimator_comparison").fetchall())
    assert lds_of[part.fit_id] == pytest.approx(lds, abs=1e-6) == lds_of[full.fit_id]
    before = snapshot(st.root)
    for bad in (1, 0, True, 2.5, "100"):
        with pytest.raises(InputError, match="calibration_models"):
            ingest_scores(st, tmp / "tm.npy", "bad", "e", 0.5, calibration_models=bad)
    assert snapshot(st.root) == before
    r = CliRunner().invoke(cli, ["ingest", "scores", str(st.root), str(tmp / "tm.npy"), "--name", "cli0",
                                 "--experiment", "e", "--alpha", "0.5", "--calibration-models", "0"])
    assert r.exit_code == 0, r.output
    con = dmstore.connect(st.root)
    assert np.array_equal(_fit_arrays(con, full.fit_id)[0]["scale"],
                          con.sql("SELECT scale FROM fits WHERE estimator = 'cli0' ORDER BY target_id").fetchnumpy()["scale"])


def test_topk_neighbors_equal_numpys(lin):
    st, X, Y, S, tmp = lin
    np.save(tmp / "tm.npy", S)
    fid = ingest_scores(st, tmp / "tm.npy", "m", "e", 0.5).fit_id
    con = dmstore.connect(st.root)
    rows = con.sql("SELECT target_id, train_id, rank FROM topk_neighbors($f, 5) WHERE direction = 'positive' "
                   "ORDER BY target_id, rank", params={"f": fid}).fetchall()
    for j in range(N):
        want = [int(i) for i in np.argsort(-S[j], kind="stable")[:5] if S[j, i] > 0]
        got = [r[1] for r in rows if r[0] == D + j]
        assert got == want, j
    # removal effects and predictions of any mask in margin units, through the calibrated weights
    scale = con.sql("SELECT scale FROM fits WHERE fit_id = $f ORDER BY target_id", params={"f": fid}).fetchnumpy()["scale"]
    eff = con.sql("SELECT dm_predict($f, $t, mask_of([0, 1, 2]))", params={"f": fid, "t": D}).fetchall()[0][0]
    bias = con.sql("SELECT bias FROM fits WHERE fit_id = $f AND target_id = $t", params={"f": fid, "t": D}).fetchall()[0][0]
    assert eff == pytest.approx(bias + scale[0] * S[0, :3].sum(), rel=1e-5)


def test_reingest_is_a_noop_and_modes(lin):
    st, X, Y, S, tmp = lin
    np.save(tmp / "tm.npy", S)
    r1 = ingest_scores(st, tmp / "tm.npy", "m", "e", 0.5, params={"proj_dim": 512})
    v = st.version
    r2 = ingest_scores(st, tmp / "tm.npy", "m", "e", 0.5, params={"proj_dim": 512})
    assert r2.reused and r2.fit_id == r1.fit_id and st.version == v           # nothing committed
    np.save(tmp / "tm2.npy", S * 2 + 1)
    with pytest.raises(ConflictError, match="already named 'm'.*overwrite"):
        ingest_scores(st, tmp / "tm2.npy", "m", "e", 0.5)
    r3 = ingest_scores(st, tmp / "tm2.npy", "m", "e", 0.5, mode="overwrite")
    con = dmstore.connect(st.root)
    assert con.sql("SELECT fit_id FROM fit_runs WHERE estimator = 'm'").fetchall() == [(r3.fit_id,)]
    assert con.sql("SELECT count(*) FROM weights WHERE fit_id = $f", params={"f": r1.fit_id}).fetchall() == [(0,)]
    params = json.loads(con.sql("SELECT params FROM fit_runs WHERE fit_id = $f", params={"f": r3.fit_id}).fetchall()[0][0])
    assert params["layout"] == "target-major" and params["kind"] == "npy" and len(params["digest"]) == 32


def test_top_k_keeps_the_largest_scores(lin):
    st, X, Y, S, tmp = lin
    np.save(tmp / "tm.npy", S)
    fid = ingest_scores(st, tmp / "tm.npy", "m", "e", 0.5, top_k=3).fit_id
    w = dmstore.connect(st.root).sql("SELECT target_id, list(train_id ORDER BY train_id) FROM weights "
                                     "WHERE fit_id = $f GROUP BY 1 ORDER BY 1", params={"f": fid}).fetchall()
    assert [ids for _, ids in w] == [sorted(np.argsort(-np.abs(S[j]))[:3].tolist()) for j in range(N)]


def test_export_round_trips_in_the_peers_layouts(lin):
    st, X, Y, S, tmp = lin
    np.save(tmp / "tm.npy", S)
    fid = ingest_scores(st, tmp / "tm.npy", "m", "e", 0.5).fit_id
    scale = dmstore.connect(st.root).sql("SELECT scale FROM fits WHERE fit_id = $f ORDER BY target_id",
                                         params={"f": fid}).fetchnumpy()["scale"]
    tids, shape = export_scores(st, fid, tmp / "back.npy", "train-major")
    assert shape == (D, N) and tids.tolist() == list(range(D, D + N))
    assert np.allclose(np.load(tmp / "back.npy"), (S * scale[:, None]).T, rtol=1e-6)
    r = CliRunner().invoke(cli, ["export", str(st.root), "--scores", str(fid), "-o", str(tmp / "back.pt")])
    assert r.exit_code == 0, r.output
    assert np.allclose(torch.load(tmp / "back.pt").numpy(), S * scale[:, None], rtol=1e-6)
    # and back in: the exported weights are a fit of their own with the same LDS
    again = ingest_scores(st, tmp / "back.npy", "again", "e", 0.5, layout="train-major").fit_id
    lds = dict(dmstore.connect(st.root).sql("SELECT fit_id, lds FROM estimator_comparison").fetchall())
    assert lds[again] == pytest.approx(lds[fid], abs=1e-6)


def _bad(tmp, name, arr):
    np.save(tmp / name, arr)
    return tmp / name


def test_bad_input_is_refused_and_the_store_unchanged(lin):
    st, X, Y, S, tmp = lin
    before = snapshot(st.root)
    nan = S.copy()
    nan[3, 7] = np.nan
    cases = [
        (_bad(tmp, "nan.npy", nan), {}, r"nan\.npy: row 3, column 7 \(target 43, train id 7\): score nan"),
        (_bad(tmp, "shape.npy", S[:5]), {}, r"shape \(5, 40\) is not \(12, 40\).*neither"),
        (_bad(tmp, "t.npy", S.T.copy()), {}, r"fits layout train-major"),
        (_bad(tmp, "ints.npy", S.astype(np.int32)), {}, "expected a plain floating-point matrix"),
    ]
    for path, kw, match in cases:
        with pytest.raises(InputError, match=match):
            ingest_scores(st, path, "m", "e", 0.5, **kw)
    tri = lambda rows: pa.table({"target_id": pa.array([r[0] for r in rows], pa.int32()),  # noqa: E731
                                 "train_id": pa.array([r[1] for r in rows], pa.int32()),
                                 "score": pa.array([r[2] for r in rows], pa.float32())})
    for rows, match in (([(D, 1, 0.5), (D + N + 3, 2, 0.1)], "data row 2: target_id 55 is not an example"),
                        ([(D, 1, 0.5), (D, 1, 0.7)], "data row 2: target 40, train id 1 appears twice"),
                        ([(D, 99, 0.5)], "data row 1: train_id 99 is not a train example"),
                        ([(D, 1, float("inf"))], "data row 1: score inf")):
        pq.write_table(tri(rows), tmp / "bad.parquet")
        with pytest.raises(InputError, match=match):
            ingest_scores(st, tmp / "bad.parquet", "m", "e", 0.5)
    with pytest.raises(InputError, match="dmstore's own estimator 'lasso'"):
        ingest_scores(st, _bad(tmp, "ok.npy", S), "lasso", "e", 0.5)
    assert snapshot(st.root) == before
    r = CliRunner().invoke(cli, ["ingest", "scores", str(st.root), str(tmp / "nan.npy"), "--name", "m",
                                 "--experiment", "e", "--alpha", "0.5"])
    assert r.exit_code == 1 and r.output.startswith("Error: ") and "row 3, column 7" in r.output, r.output
    r = CliRunner().invoke(cli, ["ingest", "scores", str(st.root), str(tmp / "t.npy"), "--name", "m",
                                 "--experiment", "e", "--alpha", "0.5"])
    assert r.exit_code == 1 and "--layout train-major" in r.output, r.output
    assert snapshot(st.root) == before


def test_cli_ingest_and_compare_in_one_query(lin):
    st, X, Y, S, tmp = lin
    np.save(tmp / "trm.npy", S.T.copy())
    r = CliRunner().invoke(cli, ["ingest", "scores", str(st.root), str(tmp / "trm.npy"), "--name", "trak",
                                 "--experiment", "e", "--alpha", "0.5", "--layout", "train-major",
                                 "--param", "proj_dim=512", "--param", "n_models=10"])
    assert r.exit_code == 0 and "fit 1: trak on 12 targets" in r.output, r.output
    from dmstore.fit import fit
    fit(st, "e", 0.5, n_lambdas=5, progress=False)
    r = CliRunner().invoke(cli, ["query", str(st.root), "SELECT estimator, n_lds, round(lds, 3) AS lds "
                                 "FROM estimator_comparison ORDER BY fit_id", "--csv"])
    assert r.exit_code == 0 and r.output.splitlines()[0] == "estimator,n_lds,lds", r.output
    assert [x.split(",")[:2] for x in r.output.splitlines()[1:]] == [["trak", "12"], ["lasso", "12"]]
    params = json.loads(dmstore.connect(st.root).sql("SELECT params FROM fit_runs WHERE estimator = 'trak'")
                        .fetchall()[0][0])
    assert params["params"] == {"proj_dim": "512", "n_models": "10"}
