"""The training worker: determinism, resume without duplicates, repeats, roles, plug-in recipes,
and the counterfactual / support retraining on real digits models."""
import numpy as np
import pyarrow as pa
import pytest

from dmstore import InputError, Store
from dmstore.analysis import counterfactual, support
from dmstore.fit import fit
from dmstore.recipes.digits import DigitsMLP
from dmstore.train import plan_models, train


class TinyLinear:
    """A plug-in recipe: a deterministic 'model' whose margin is a fixed linear function of the mask."""
    name = "tiny"

    def __init__(self):
        rng = np.random.default_rng(0)
        self.theta = rng.normal(size=(10, 14))

    def examples(self):
        return pa.table({"example_id": np.arange(14, dtype=np.int32), "split": ["train"] * 10 + ["test"] * 4,
                         "label": np.zeros(14, np.int32)})

    def train(self, masks, seeds):
        m = (masks @ self.theta + 0.001 * (np.asarray(seeds)[:, None] % 7)).astype(np.float32)
        return {"margins": m, "train_accuracy": (m[:, :10] > 0).mean(1), "test_accuracy": (m[:, 10:] > 0).mean(1)}


TINY = TinyLinear()


class TinyLinearV2(TinyLinear):
    """The same recipe name with other settings."""

    def config(self):
        return {"version": 2}


TINY_V2 = TinyLinearV2()


def test_plan_is_deterministic_and_exact_size():
    a = plan_models("e", 0.5, "fit", 0, np.arange(6), 20, repeats=2)
    b = plan_models("e", 0.5, "fit", 0, np.arange(6), 20, repeats=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    masks, seeds, mask_ids = a
    assert (masks.sum(1) == 10).all()
    assert np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])
    assert mask_ids[0] == mask_ids[1] != mask_ids[2] and len(set(seeds.tolist())) == 6


def test_resume_never_duplicates(tmp_path):
    root = tmp_path / "s"
    r1 = train(root, "tests.train.test_train:TINY", models=7, batch=3)
    assert (r1.trained, r1.skipped) == (7, 0)
    r2 = train(root, "tests.train.test_train:TINY", models=12, batch=5)
    assert (r2.trained, r2.skipped) == (5, 7)
    st = Store.open(root)
    t = st.models("tiny", 0.5, columns=["source_row", "seed"])
    assert sorted(t["source_row"].to_pylist()) == list(range(12))
    # the same models as one uninterrupted run
    other = tmp_path / "o"
    train(other, "tests.train.test_train:TINY", models=12, batch=12)
    assert np.array_equal(Store.open(other).mask_matrix("tiny", 0.5), st.mask_matrix("tiny", 0.5))
    assert np.array_equal(Store.open(other).margin_matrix("tiny", 0.5), st.margin_matrix("tiny", 0.5))


def test_roles_repeats_and_bad_args(tmp_path):
    root = tmp_path / "s"
    train(root, "tests.train.test_train:TINY", models=4, repeats=2, role="eval")
    st = Store.open(root)
    t = st.models("tiny", 0.5, "eval", ["mask_id", "role"])
    assert len(set(t["mask_id"].to_pylist())) == 2
    with pytest.raises(InputError, match="^role must be one of") as e:
        train(root, "tests.train.test_train:TINY", models=4, role="test")
    assert e.value.params == ("role",)
    with pytest.raises(InputError, match="unknown recipe"):
        train(root, "nope", models=4)
    with pytest.raises(InputError, match="cannot be loaded"):
        train(root, "tests.train.test_train:NOPE", models=4)


def test_changed_recipe_settings_are_refused(tmp_path):
    root = tmp_path / "s"
    train(root, "tests.train.test_train:TINY", models=3, batch=3)
    with pytest.raises(InputError, match="other settings of recipe 'tiny'"):
        train(root, "tests.train.test_train:TINY_V2", models=3)
    train(root, "tests.train.test_train:TINY_V2", models=3, experiment="tiny-v2")  # a new experiment is fine
    src = set(Store.open(root).models(columns=["source"])["source"].to_pylist())
    assert src == {"train:tiny:fit", "train:tiny/" + __import__("hashlib").blake2b(b'{"version": 2}', digest_size=4).hexdigest() + ":fit"}


def test_digits_same_seed_same_margins_on_cpu():
    rec = DigitsMLP(epochs=2)
    masks, seeds, _ = plan_models("digits", 0.5, "fit", 0, np.arange(4), rec.d)
    a = rec.train(masks, seeds)["margins"]
    b = rec.train(masks, seeds)["margins"]
    assert a.dtype == np.float32 and a.shape == (4, 1797) and np.array_equal(a, b)
    # a model's result does not depend on which other models share its batch
    c = rec.train(masks[:2], seeds[:2])["margins"]
    assert np.allclose(a[:2], c, atol=1e-5)


def test_counterfactual_and_support_on_a_linear_recipe(tmp_path):
    """With a linear 'training', actual effects equal the true weights' sums, so a good fit's
    predictions must match them closely."""
    root = tmp_path / "s"
    train(root, "tests.train.test_train:TINY", models=300, batch=300)
    st = Store.open(root, "a")
    f = fit(st, "tiny", 0.5, targets="test", n_lambdas=5, lambda_min_ratio=1e-4, dtype="float64").fit_id
    r = counterfactual(st, f, targets=[10, 11], ks=(1, 2, 3), trials=2)   # the recorded plug-in
    s = support(st, f, targets=[10, 11, 12, 13], ks=(1, 2, 4, 8), trials=1)
    assert r["n"] > 0 and r["pearson"] > 0.95
    con = st.connect()
    rows = con.sql("SELECT target_id, removed, predicted_effect, actual_effect FROM counterfactuals").fetchall()
    from dmstore.storage.parquet import decode_ranges
    for t, removed, pred, act in rows:
        ids = decode_ranges(removed)
        assert act == pytest.approx(TINY.theta[ids, t].sum(), abs=0.01)   # seed jitter is ≤ 0.006
    assert s["n"] == 4
    # Algorithm 1 against an oracle: the linear recipe's margin without a set R is sum(theta) - sum(theta_R)
    import json
    import math
    from sklearn.isotonic import IsotonicRegression
    sup = con.sql("SELECT target_id, k_hat, support, certified, certify_margin, grid FROM support ORDER BY 1").fetchall()
    assert len(sup) == 4
    for t, k_hat, support_k, certified, cert_margin, grid in sup:
        g = {int(k): v for k, v in json.loads(grid).items()}
        w = con.sql("SELECT train_id, weight FROM dm_weights($f) WHERE target_id = $t ORDER BY weight DESC, train_id",
                    params={"f": f, "t": t}).fetchnumpy()
        top = w["train_id"][w["weight"] > 0]
        full = TINY.theta[:, t].sum()
        for k, v in g.items():
            assert v == pytest.approx(full - TINY.theta[top[:k], t].sum(), abs=0.01)
        ks = sorted(g)
        h = IsotonicRegression(increasing=False).fit(ks, [g[k] for k in ks]).predict(ks)
        below = [i for i in range(len(ks)) if h[i] < 0]
        if h[0] < 0:
            want = 0.0
        elif below:
            i = below[0]
            want = ks[i - 1] + (ks[i] - ks[i - 1]) * h[i - 1] / (h[i - 1] - h[i])
        else:
            want = None
        assert (k_hat is None) == (want is None) and (want is None or k_hat == pytest.approx(want))
        if want:
            assert support_k == math.ceil(1.2 * want)
            assert cert_margin == pytest.approx(full - TINY.theta[top[:support_k], t].sum(), abs=0.01)
            assert certified == (cert_margin < 0)


def test_counterfactual_removals_file_on_a_plug_in_recipe(tmp_path):
    """Any removal set (a subpopulation, paper appendix B): actual effects equal the true
    weights' sums of the linear plug-in recipe, predictions are dm_removal_effect's, and the
    plug-in resolves from what `dmstore train` recorded (no built-in named 'tiny')."""
    from click.testing import CliRunner
    from dmstore.cli import cli
    from dmstore.storage.parquet import decode_ranges
    root = tmp_path / "s"
    res = CliRunner().invoke(cli, ["train", str(root), "--recipe", "tests.train.test_train:TINY", "--models", "300",
                                   "--workers", "1"])
    assert res.exit_code == 0, res.output
    st = Store.open(root, "a")
    f = fit(st, "tiny", 0.5, targets="test", n_lambdas=5, lambda_min_ratio=1e-4, dtype="float64").fit_id
    sets = tmp_path / "sets.csv"
    sets.write_text("set_id,target_id,train_id\n"
                    "0,10,1\n0,10,2\n0,10,3\n"                 # one set for target 10
                    "1,11,0\n1,11,5\n1,12,0\n1,12,5\n"       # one subpopulation, two targets
                    "2,13,9\n")
    res = CliRunner().invoke(cli, ["counterfactual", str(root), "--fit", str(f), "--removals", str(sets),
                                   "--trials", "2"])
    assert res.exit_code == 0, res.output
    assert "4 (set, target) pairs from 3 retrained set(s)" in res.output
    con = st.connect()
    rows = con.sql("SELECT set_id, target_id, selector, k, removed, predicted_effect, actual_effect "
                   "FROM counterfactuals ORDER BY set_id, target_id").fetchall()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [(0, 10, "removals", 3), (1, 11, "removals", 2),
                                                          (1, 12, "removals", 2), (2, 13, "removals", 1)]
    w = con.sql("SELECT target_id, train_id, weight FROM datamodels WHERE fit_id = $f", params={"f": f}).fetchall()
    weights = {(t, i): x for t, i, x in w}
    for set_id, t, _, _, removed, predicted, actual in rows:
        ids = decode_ranges(removed)
        assert actual == pytest.approx(TINY.theta[ids, t].sum(), abs=0.01)          # the truth
        assert predicted == pytest.approx(sum(weights.get((t, int(i)), 0.0) for i in ids), abs=1e-6)
    bad = tmp_path / "bad.csv"
    bad.write_text("set_id,target_id\n0,10\n")
    res = CliRunner().invoke(cli, ["counterfactual", str(root), "--fit", str(f), "--removals", str(bad)])
    assert res.exit_code == 1 and "missing column(s) train_id" in res.output


def test_three_shards_at_once_equal_one_unsharded_run(tmp_path):
    """`train --shard K/3` in 3 processes started together on one (not yet existing) store:
    the same models as one unsharded run — masks, seeds, margins, ids by source row."""
    import os
    import subprocess
    import sys
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(tests), os.environ.get("PYTHONPATH", "")]))
    sharded, whole = tmp_path / "sharded", tmp_path / "whole"
    args = ["--recipe", "tests.train.test_train:TINY", "--models", "40", "--batch", "7", "--workers", "1"]
    procs = [subprocess.Popen([sys.executable, "-m", "dmstore", "-q", "train", str(sharded), *args,
                               "--shard", f"{k}/3"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for k in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    assert sorted(int(o.split()[1]) for o, _ in outs) == [13, 13, 14]   # trained K-th shares, disjoint
    train(whole, "tests.train.test_train:TINY", models=40, batch=7)
    cols = ["source_row", "seed", "mask_id", "n_included", "role", "source"]
    a, b = Store.open(sharded), Store.open(whole)
    ma = a.models("tiny", 0.5, columns=cols + ["model_id"]).sort_by("source_row")
    mb = b.models("tiny", 0.5, columns=cols + ["model_id"]).sort_by("source_row")
    assert ma.select(cols).equals(mb.select(cols)) and ma.num_rows == 40
    oa = np.argsort(a.models("tiny", 0.5, columns=["source_row"])["source_row"].to_numpy())
    ob = np.argsort(b.models("tiny", 0.5, columns=["source_row"])["source_row"].to_numpy())
    assert np.array_equal(a.mask_matrix("tiny", 0.5)[oa], b.mask_matrix("tiny", 0.5)[ob])
    assert np.array_equal(a.margin_matrix("tiny", 0.5)[oa], b.margin_matrix("tiny", 0.5)[ob])
    r = train(sharded, "tests.train.test_train:TINY", models=40, batch=7, shard=(1, 3))   # a rerun: nothing left
    assert (r.trained, r.skipped) == (0, 13)
    with pytest.raises(InputError, match="0 <= K < N"):
        train(sharded, "tests.train.test_train:TINY", models=40, shard=(3, 3))
