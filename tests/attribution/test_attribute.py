"""`dmstore attribute`: each method's scores against an independent computation (traker called
directly, dattri's explicit influence functions, TracIn-CP summed by hand with autograd, cosine
similarity in numpy), stored raw × calibration scale, reruns that do nothing, the libraries'
module state left as found, and plug-in recipes without the protocol refused."""
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import dmstore
from dmstore import InputError, Store
from dmstore.attribution import attribute
from dmstore.attribution.models import full_models
from dmstore.cli import cli
from dmstore.train import train

from .tiny import TINY_MLP

SPEC = "tests.attribution.tiny:TINY_MLP"
pytest.importorskip("dattri")
pytest.importorskip("trak")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("attr") / "s"
    train(root, SPEC, models=120, batch=120)
    train(root, SPEC, models=30, batch=30, role="eval", seed=1)
    return root


def raw_scores(root, fit_id):
    """float64 [d, n_targets] of a stored fit: weight / scale (ingest stores weights calibrated)."""
    con = dmstore.connect(root)
    scale = dict(con.sql(f"SELECT target_id, scale FROM fits WHERE fit_id = {fit_id}").fetchall())
    S = np.zeros((60, 20))
    for t, i, w in con.sql(f"SELECT target_id, train_id, weight FROM weights WHERE fit_id = {fit_id}").fetchall():
        S[i, t - 60] = w / scale[t]
    return S


def grads_by_hand(model, X, y, fn):
    """Per-example gradients with plain autograd, one example at a time: float64 [n, P]."""
    out = []
    for i in range(len(y)):
        model.zero_grad()
        fn(model(X[i:i + 1]), y[i:i + 1]).sum().backward()
        out.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double())
    return torch.stack(out)


def test_trak_equals_traker_called_directly(store, tmp_path):
    from trak import TRAKer
    from trak.projectors import BasicProjector, ProjectionType
    r = attribute(Store.open(store, "a"), "trak", models=2, proj_dim=16, progress=False)
    st = Store.open(store)
    models, cached = full_models(st, TINY_MLP, 2, 0)
    assert cached                                   # attribute trained and kept them
    X, y = TINY_MLP.attribution_data()
    model = TINY_MLP.model()
    proj = BasicProjector(grad_dim=sum(p.numel() for p in model.parameters()), proj_dim=16, seed=0,
                          proj_type=ProjectionType.normal, device=torch.device("cpu"))
    tr = TRAKer(model=model, task="image_classification", train_set_size=60, save_dir=str(tmp_path / "t"),
                device="cpu", projector=proj, use_half_precision=False)
    for mid, m in enumerate(models):
        tr.load_checkpoint(m["model"].state_dict(), model_id=mid)
        tr.featurize(batch=(X[:60], y[:60]), num_samples=60)
    tr.finalize_features()
    for mid, m in enumerate(models):
        tr.start_scoring_checkpoint(exp_name="e", checkpoint=m["model"].state_dict(), model_id=mid, num_targets=20)
        tr.score(batch=(X[60:], y[60:]), num_samples=20)
    want = np.asarray(tr.finalize_scores(exp_name="e"), np.float64)
    got = raw_scores(store, r.fit_id)
    assert got.shape == want.shape == (60, 20)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6 * np.abs(want).max())
    again = attribute(Store.open(store, "a"), "trak", models=2, proj_dim=16, progress=False)
    assert again.reused and again.fit_id == r.fit_id
    # the report's method table counts the models trained for it (the axis: LDS per model trained)
    from dmstore.engine.query import run
    rows = run(st.connect(), "report_comparison", e="tinymlp", a=0.5, all=True, f=r.fit_id,
               est="trak").to_arrow_table().to_pylist()
    assert {x["estimator"]: x["models_used"] for x in rows}["trak"] == 2


def test_influence_functions_equal_dattri_explicit(store):
    from dattri.algorithm import tracin, trak
    before = (dict(tracin.DEFAULT_PROJECTOR_KWARGS), dict(trak.DEFAULT_PROJECTOR_KWARGS))
    r = attribute(Store.open(store, "a"), "if", damping=0.1, progress=False)
    r2 = attribute(Store.open(store, "a"), "if", damping=0.1, library="dattri", name="if_dattri", progress=False)
    ours, theirs = raw_scores(store, r.fit_id), raw_scores(store, r2.fit_id)
    # dattri's IF score is the same inner product ∇loss(test)ᵀ(H + λI)⁻¹∇loss(train): same sign
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4 * np.abs(theirs).max())
    # dattri's TRAK updates its module's projector defaults: dmstore restores them
    attribute(Store.open(store, "a"), "trak", models=1, proj_dim=8, library="dattri", name="trak_dattri",
              progress=False)
    assert (dict(tracin.DEFAULT_PROJECTOR_KWARGS), dict(trak.DEFAULT_PROJECTOR_KWARGS)) == before
    # and by hand: the Hessian by double backward, the solve in numpy
    (m,), _ = full_models(Store.open(store), TINY_MLP, 1, 0)
    model = m["model"]
    X, y = TINY_MLP.attribution_data()
    params = list(model.parameters())
    loss = TINY_MLP.loss(model(X[:60]), y[:60]).mean()
    g = torch.autograd.grad(loss, params, create_graph=True)
    g = torch.cat([x.reshape(-1) for x in g])
    H = torch.stack([torch.cat([h.reshape(-1) for h in torch.autograd.grad(g[k], params, retain_graph=True)])
                     for k in range(g.numel())]).double().numpy()
    Gtr = grads_by_hand(model, X[:60], y[:60], TINY_MLP.loss).numpy()
    Gte = grads_by_hand(model, X[60:], y[60:], TINY_MLP.loss).numpy()
    want = Gtr @ np.linalg.solve(H + 0.1 * np.eye(len(H)), Gte.T)
    np.testing.assert_allclose(ours, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())


def test_tracin_graddot_and_repsim_by_hand(store):
    st = Store.open(store, "a")
    fits = {m: attribute(st, m, progress=False).fit_id for m in ("tracin", "graddot", "repsim")}
    (m,), _ = full_models(Store.open(store), TINY_MLP, 1, 0)
    X, y = TINY_MLP.attribution_data()
    want = 0
    for ck, lr in zip(m["checkpoints"], m["lrs"]):
        net = TINY_MLP.model()
        net.load_state_dict(ck)
        want = want + lr * (grads_by_hand(net, X[:60], y[:60], TINY_MLP.loss)
                            @ grads_by_hand(net, X[60:], y[60:], TINY_MLP.loss).T).numpy()
    assert len(m["checkpoints"]) == TINY_MLP.epochs
    got = raw_scores(store, fits["tracin"])
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5 * np.abs(want).max())
    G = grads_by_hand(m["model"], X, y, TINY_MLP.loss).numpy()
    gd = G[:60] @ G[60:].T
    np.testing.assert_allclose(raw_scores(store, fits["graddot"]), gd, rtol=1e-3, atol=1e-5 * np.abs(gd).max())
    with torch.no_grad():
        F = torch.relu(m["model"].fc1(X)).double().numpy()
    F /= np.maximum(np.linalg.norm(F, axis=1, keepdims=True), 1e-12)
    np.testing.assert_allclose(raw_scores(store, fits["repsim"]), F[:60] @ F[60:].T, rtol=1e-4, atol=1e-6)
    comp = {r[0]: r[1:] for r in dmstore.connect(store).sql(
        "SELECT estimator, n_targets, n_eval_models FROM estimator_comparison").fetchall()}
    assert {"tracin", "graddot", "repsim"} <= set(comp) and comp["tracin"] == (20, 30)


def test_cli_and_refusals(store, tmp_path):
    r = CliRunner().invoke(cli, ["attribute", str(store), "--method", "graddot", "--targets", "60-69",
                                 "--name", "graddot10"])
    assert r.exit_code == 0 and "graddot10 on 10 targets" in r.output, r.output
    r = CliRunner().invoke(cli, ["attribute", str(store), "--method", "nope"])
    assert r.exit_code == 2
    r = CliRunner().invoke(cli, ["attribute", str(store), "--method", "if", "--damping", "0"])
    assert r.exit_code == 1 and "--damping" in r.output, r.output
    r = CliRunner().invoke(cli, ["attribute", str(store), "--method", "tracin", "--library", "traker"])
    assert r.exit_code == 1 and "dattri" in r.output, r.output
    # a plug-in recipe without the attribution protocol is refused, naming what it lacks
    other = tmp_path / "lin"
    train(other, "tests.train.test_train:TINY", models=20, batch=20)
    before = sorted(p.name for p in (other / "_log").iterdir())
    with pytest.raises(InputError, match="lacks model, full_models, attribution_data, output, loss, features"):
        attribute(Store.open(other, "a"), "graddot", progress=False)
    r = CliRunner().invoke(cli, ["attribute", str(other), "--method", "repsim"])
    assert r.exit_code == 1 and "cannot be used for attribution" in r.output
    assert sorted(p.name for p in (other / "_log").iterdir()) == before


def test_a_registered_method_runs_end_to_end(store):
    """One registry entry is all a new method needs: `dmstore attribute --method` runs it with the
    entry's default models and library, and its scores are stored calibrated like any other's."""
    from dmstore.attribution import registry
    seen = {}

    def fake(job):
        seen.update(library=job.library, models=len(job.models), options=job.options)
        return np.tile(np.arange(job.d, dtype=np.float32)[:, None] - 30, (1, len(job.targets)))
    registry.register(registry.Method("fakeattr", "a fake method", ("fakelib",), 1, fake, ("damping",)))
    try:
        r = CliRunner().invoke(cli, ["attribute", str(store), "--method", "fakeattr", "--damping", "0.5"])
        assert r.exit_code == 0, r.output
        assert seen == {"library": "fakelib", "models": 1, "options": {"damping": 0.5}}
        fid = int(r.output.split("fit ")[1].split(":")[0])
        S = raw_scores(store, fid)
        assert np.allclose(S, np.arange(60)[:, None] - 30, atol=1e-4)
        again = CliRunner().invoke(cli, ["attribute", str(store), "--method", "fakeattr", "--damping", "0.5"])
        assert again.exit_code == 0 and again.output.startswith(f"already stored: fit {fid}:"), again.output
    finally:
        registry.unregister("fakeattr")
