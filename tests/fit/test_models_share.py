"""`fit(models=N)`: a fit on a nested, seeded share of the fit + val models. Oracle: the same fit
run on a fresh store that holds only the chosen models."""
import numpy as np
import pytest
from click.testing import CliRunner

from dmstore import Store
from dmstore.cli import cli
from dmstore.errors import InputError
from dmstore.fit import fit
from dmstore.fit.stats import model_order


def test_model_order_is_nested_seeded_and_order_free():
    ids = np.arange(1000, 3000, 3)
    order = model_order(ids, 0)
    assert sorted(order.tolist()) == ids.tolist()
    perm = np.random.default_rng(1).permutation(ids)
    assert (model_order(perm, 0) == order).all()                      # independent of the store's order
    assert set(order[:100]) < set(order[:400]) < set(order)           # nested by construction
    assert not (model_order(ids, 1)[:100] == order[:100]).all()       # the seed changes the draw
    sub = order[:300]
    assert set(model_order(sub, 0)[:100]) == set(order[:100])          # a store holding fewer models agrees


@pytest.mark.parametrize("estimator", ["lasso", "diff_means"])
def test_share_equals_a_fit_on_a_store_of_only_those_models(filled, synth, tmp_path, estimator):
    roles = np.array(["fit"] * 40 + ["val"] * 10 + ["eval"] * 10, dtype=object)
    ids = filled.model_ids("exp", synth.alpha, ["fit", "val"])
    kw = dict(targets=list(range(synth.d, synth.d + 6)), n_lambdas=4, progress=False)
    r = fit(filled, "exp", synth.alpha, estimator=estimator, models=30, **kw)
    runs = filled.fit_runs().to_pylist()[-1]
    assert runs["n_fit"] + runs["n_val"] == 30 and '"models": 30' in runs["params"]
    chosen = set(model_order(ids, 0)[:30].tolist())
    # the oracle: the chosen models (model ids are their row numbers here) in a store of their own
    rows = np.array(sorted(chosen))
    other = Store.create(tmp_path / "only", train_size=synth.d, test_size=synth.n_test)
    keep = np.r_[rows, np.flatnonzero(roles == "eval")]
    other.append("exp", synth.alpha, synth.masks[keep], synth.margins[keep], synth.targets, seeds=synth.seeds[keep],
                 roles=roles[keep])
    o = fit(other, "exp", synth.alpha, estimator=estimator, **kw)
    w1 = filled.connect().execute(f"SELECT target_id, train_id, weight FROM dm_weights({r.fit_id}) ORDER BY 1, 2").fetchall()
    w2 = other.connect().execute(f"SELECT target_id, train_id, weight FROM dm_weights({o.fit_id}) ORDER BY 1, 2").fetchall()
    assert [x[:2] for x in w1] == [x[:2] for x in w2]
    assert np.allclose([x[2] for x in w1], [x[2] for x in w2], atol=1e-5)


def test_share_identity_reuse_and_errors(filled, synth):
    kw = dict(estimator="diff_means", targets="test", progress=False)
    a = fit(filled, "exp", synth.alpha, models=20, **kw)
    assert fit(filled, "exp", synth.alpha, models=20, reuse=True, **kw).fit_id == a.fit_id
    full = fit(filled, "exp", synth.alpha, reuse=True, **kw)
    assert full.fit_id != a.fit_id and full.n_fit + full.n_val == 50
    assert fit(filled, "exp", synth.alpha, models=30, reuse=True, **kw).fit_id not in (a.fit_id, full.fit_id)
    with pytest.raises(InputError, match="only 50 fit \\+ val models"):
        fit(filled, "exp", synth.alpha, models=51, **kw)
    res = CliRunner().invoke(cli, ["fit", str(filled.root), "--experiment", "exp", "--alpha", "0.5", "--models", "2"])
    assert res.exit_code == 2 and "--models" in res.output
