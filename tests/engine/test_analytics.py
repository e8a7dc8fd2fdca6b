"""Every SQL analytic against a direct numpy computation on a seeded store."""
import numpy as np
import pyarrow as pa
import pytest

from dmstore import Store
from dmstore.fit import fit

from dmstore.testing import alpha_masks

D, NT = 40, 8


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    rng = np.random.default_rng(21)
    labels = rng.integers(0, 3, D + NT)
    groups = [f"g{i}" for i in range(D)] + [f"g{rng.integers(0, D)}" if i % 2 else f"solo{i}" for i in range(NT)]
    feats = rng.normal(size=(D + NT, 4)).astype(np.float32)
    ex = pa.table({"example_id": np.arange(D + NT, dtype=np.int32), "split": ["train"] * D + ["test"] * NT,
                   "label": labels.astype(np.int32), "group_key": groups,
                   "features": pa.array(list(feats), pa.list_(pa.float32()))})
    st = Store.create(tmp_path_factory.mktemp("an") / "s", examples=ex)
    th = rng.normal(size=(D, NT)) * (rng.random((D, NT)) < 0.4)
    X = alpha_masks(rng, 500, D, 0.5)
    Y = X @ th + rng.normal(scale=0.5, size=(500, NT)) + 1.0
    roles = ["fit"] * 400 + ["val"] * 50 + ["eval"] * 50
    st.append("e", 0.5, X, Y, np.arange(D, D + NT), roles=roles)
    fid = fit(st, "e", 0.5, n_lambdas=6, keep_path=True, dtype="float64").fit_id
    con = st.connect()
    w = con.sql("SELECT target_id, train_id, weight FROM datamodels WHERE fit_id = $f", params={"f": fid}).fetchnumpy()
    W = np.zeros((D, NT))
    W[w["train_id"], w["target_id"] - D] = w["weight"]
    b = con.sql("SELECT bias FROM fits WHERE fit_id = $f AND selected ORDER BY target_id", params={"f": fid}).fetchnumpy()["bias"]
    return st, con, fid, X, Y.astype(np.float32), W, b, labels, groups, feats


def test_topk_neighbors(env):
    st, con, fid, X, Y, W, b, labels, *_ = env
    k = 3
    got = con.sql("SELECT * FROM topk_neighbors($f, $k)", params={"f": fid, "k": k}).fetchnumpy()
    for j in range(NT):
        t = D + j
        for direction, sign in (("positive", 1), ("negative", -1)):
            sel = (got["target_id"] == t) & (got["direction"] == direction)
            w = W[:, j] * sign
            want = [i for i in np.argsort(-w, kind="stable") if w[i] > 0][:k]
            assert got["train_id"][sel].tolist() == want
            assert got["rank"][sel].tolist() == list(range(1, len(want) + 1))
            assert np.allclose(got["weight"][sel], W[want, j])
            assert got["train_label"][sel].tolist() == labels[want].tolist()
            assert (got["target_label"][sel] == labels[t]).all()


def test_neighbor_label_agreement(env):
    st, con, fid, X, Y, W, b, labels, *_ = env
    pairs, per_target, n = con.sql("SELECT * FROM neighbor_label_agreement($f, 3)", params={"f": fid}).fetchall()[0]
    shares, same, total = [], 0, 0
    for j in range(NT):
        top = [i for i in np.argsort(-W[:, j], kind="stable") if W[i, j] > 0][:3]
        if top:
            s_ = sum(labels[i] == labels[D + j] for i in top)
            shares.append(s_ / len(top))
            same, total = same + s_, total + len(top)
    assert n == len(shares) and pairs == pytest.approx(same / total) and per_target == pytest.approx(np.mean(shares))


def test_topk_at_a_path_lambda(env):
    st, con, fid, *_ = env
    lam = con.sql("SELECT lam FROM fits WHERE fit_id = $f AND NOT selected AND target_id = $t ORDER BY lam LIMIT 1",
                  params={"f": fid, "t": D}).fetchall()[0][0]
    got = con.sql("SELECT train_id, weight FROM topk_neighbors($f, 100, lam := $l) WHERE target_id = $t AND direction = 'positive'",
                  params={"f": fid, "l": lam, "t": D}).fetchnumpy()
    w = con.sql("SELECT train_id, weight FROM weights WHERE fit_id = $f AND target_id = $t AND lam = $l AND weight > 0 ORDER BY weight DESC",
                params={"f": fid, "t": D, "l": lam}).fetchnumpy()
    assert got["train_id"].tolist() == w["train_id"].tolist()


def test_dm_predict_matches_numpy(env):
    st, con, fid, X, Y, W, b, *_ = env
    got = con.sql("""SELECT model_id, dm_predict($f, $t, mask) AS p, dm_predict($f, $t, mask::BLOB) AS p2
                     FROM models WHERE role = 'eval' ORDER BY model_id""", params={"f": fid, "t": D + 2}).fetchnumpy()
    want = X[450:] @ W[:, 2] + b[2]
    assert np.allclose(got["p"], want, atol=1e-5) and np.allclose(got["p2"], want, atol=1e-5)


def test_removal_effect(env):
    st, con, fid, X, Y, W, b, *_ = env
    rng = np.random.default_rng(0)
    rows = []
    for s in range(5):
        t = D + int(rng.integers(NT))
        for i in rng.choice(D, size=7, replace=False):
            rows.append((s, t, int(i)))
    removals = pa.table({"set_id": [r[0] for r in rows], "target_id": [r[1] for r in rows], "train_id": [r[2] for r in rows]})
    con.register("my_removals", removals)
    got = con.sql("SELECT * FROM dm_removal_effect($f, 'my_removals')", params={"f": fid}).fetchnumpy()
    for s in range(5):
        r = [x for x in rows if x[0] == s]
        want = sum(W[i, t - D] for _, t, i in r)
        k = got["set_id"] == s
        assert got["n_removed"][k][0] == 7
        assert got["predicted_effect"][k][0] == pytest.approx(want, abs=1e-6)
        assert got["vs_random_control"][k][0] == pytest.approx(0.5 * want, abs=1e-6)


def test_data_support_and_cdf(env):
    st, con, fid, X, Y, W, b, *_ = env
    got = con.sql("SELECT * FROM data_support($f)", params={"f": fid}).fetchnumpy()
    expected = Y[:450].mean(0)
    want = []
    for j in range(NT):
        w = np.sort(W[:, j][W[:, j] > 0])[::-1]
        cs = np.cumsum(w)
        if expected[j] <= 0:
            want.append(0)
        else:
            hit = np.flatnonzero(cs >= expected[j] - 1e-9)
            want.append(int(hit[0]) + 1 if hit.size else None)
    assert np.allclose(got["expected_margin"], expected, rtol=1e-5)
    assert [None if (v is None or (isinstance(v, float) and np.isnan(v))) else int(v) for v in got["support"].tolist()] == want
    cdf = con.sql("SELECT * FROM data_support_cdf($f)", params={"f": fid}).fetchnumpy()
    finite = sorted(v for v in want if v is not None)
    for s, frac in zip(cdf["support"], cdf["fraction"]):
        assert frac == pytest.approx(sum(v <= s for v in finite) / NT)


def test_leakage_and_recall(env):
    st, con, fid, X, Y, W, b, labels, groups, feats = env
    k = 5
    got = con.sql("SELECT * FROM leakage($f, $k)", params={"f": fid, "k": k}).fetchnumpy()
    scores = {j: W[:, j].max() for j in range(NT) if (W[:, j] > 0).any()}
    order = sorted(scores, key=lambda j: -scores[j])
    first = [got["target_id"][got["leakage_rank"] == r + 1][0] - D for r in range(len(order))]
    assert first == order
    hits, n = 0, 0
    nn_hits = 0
    for j in range(NT):
        g = groups[D + j]
        same = [i for i in range(D) if groups[i] == g]
        if not same:
            continue
        n += 1
        w = W[:, j]
        top = [i for i in np.argsort(-w, kind="stable") if w[i] > 0][:k]
        hits += any(i in same for i in top)
        dist = np.linalg.norm(feats[:D] - feats[D + j], axis=1)
        nn_hits += any(i in same for i in np.argsort(dist)[:k])
    rec = con.sql("SELECT * FROM leakage_recall($f, $k)", params={"f": fid, "k": k}).fetchall()[0]
    assert rec[0] == "datamodel" and rec[2] == n and rec[3] == pytest.approx(hits / n)
    nn = con.sql("SELECT * FROM leakage_recall_nn($f, $k)", params={"f": fid, "k": k}).fetchall()[0]
    assert nn[0] == "nearest_neighbor" and nn[2] == n and nn[3] == pytest.approx(nn_hits / n)


def test_mask_averaged_metrics_without_repeats_equal_plain(env):
    st, con, fid, *_ = env  # one model per eval mask here
    got = con.sql("SELECT spearman, spearman_mask_avg, pearson, pearson_mask_avg, n_models, n_masks "
                  "FROM eval_metrics WHERE fit_id = $f", params={"f": fid}).fetchnumpy()
    assert (got["n_models"] == got["n_masks"]).all()
    assert np.allclose(got["spearman"], got["spearman_mask_avg"]) and np.allclose(got["pearson"], got["pearson_mask_avg"])


def test_neighbor_features(env):
    st, con, fid, X, Y, W, b, labels, groups, feats = env
    got = con.sql("SELECT * FROM neighbor_features($f, 3, 2)", params={"f": fid}).to_arrow_table().to_pylist()
    top = con.sql("SELECT * FROM topk_neighbors($f, 3)", params={"f": fid}).to_arrow_table().to_pylist()
    first = sorted({r["target_id"] for r in top})[:2]
    assert {r["target_id"] for r in got} == set(first)
    assert [(r["target_id"], r["train_id"]) for r in got] == [(r["target_id"], r["train_id"]) for r in top if r["target_id"] in first]
    for r in got:
        assert np.allclose(r["target_features"], feats[r["target_id"]]) and np.allclose(r["train_features"], feats[r["train_id"]])
