"""Embeddings against scikit-learn run on the stored weights; dialect translation that refuses
unfaithful constructs."""
import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.cluster import SpectralClustering
from sklearn.decomposition import PCA

from dmstore.cli import cli
from dmstore import QueryError
from dmstore.dialects import view_sql
from dmstore.analysis import embed
from dmstore.fit import fit


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from dmstore import Store
    from dmstore.testing import alpha_masks
    rng = np.random.default_rng(5)
    d, n = 30, 24
    st = Store.create(tmp_path_factory.mktemp("em") / "s", train_size=d, test_size=n)
    # two groups of targets depending on two disjoint sets of train examples
    th = np.zeros((d, n))
    th[:10, :12] = rng.normal(1, 0.2, size=(10, 12))
    th[15:25, 12:] = rng.normal(1, 0.2, size=(10, 12))
    X = alpha_masks(rng, 600, d, 0.5)
    st.append("e", 0.5, X, X @ th + rng.normal(scale=0.3, size=(600, n)), np.arange(d, d + n))
    return st, fit(st, "e", 0.5, n_lambdas=5, dtype="float64").fit_id


def test_embed_matches_sklearn(fitted):
    st, fid = fitted
    r = embed(st, fid, pca=5, clusters=2)
    con = st.connect()
    w = con.sql("SELECT target_id, train_id, weight FROM datamodels WHERE fit_id = $f", params={"f": fid}).fetchnumpy()
    T = np.zeros((24, 30), np.float32)
    T[w["target_id"] - 30, w["train_id"]] = w["weight"]
    Z = T / np.linalg.norm(T, axis=1, keepdims=True)
    want = PCA(n_components=5, random_state=0).fit(Z)
    var = con.sql("SELECT explained_variance_ratio FROM embedding_variance WHERE fit_id = $f ORDER BY component",
                  params={"f": fid}).fetchnumpy()["explained_variance_ratio"]
    assert np.allclose(var, want.explained_variance_ratio_, atol=1e-5)
    coords = con.sql("SELECT value FROM embedding_pca WHERE fit_id = $f ORDER BY target_id, component",
                     params={"f": fid}).fetchnumpy()["value"].reshape(24, 5)
    ref = want.transform(Z)
    assert np.allclose(np.abs(coords), np.abs(ref), atol=1e-4)  # up to the sign of each component
    cl = con.sql("SELECT cluster FROM clusters WHERE fit_id = $f ORDER BY target_id", params={"f": fid}).fetchnumpy()["cluster"]
    ref_cl = SpectralClustering(n_clusters=2, affinity="rbf", random_state=0).fit_predict(Z)
    assert np.array_equal(cl, ref_cl)
    assert len(set(cl[:12])) == 1 and len(set(cl[12:])) == 1 and cl[0] != cl[12]  # the two groups
    assert r["targets"] == 24


def test_views_dialects(fitted):
    st, fid = fitted
    duck = view_sql(st.root, "duckdb")
    assert "CREATE OR REPLACE VIEW models" in duck and str(st.root.resolve()) in duck
    spark = view_sql(st.root, "spark", ["topk_neighbors"])   # run in Spark by tests/test_spark.py
    # only the relations topk_neighbors reads (issue 20: --view used to print all of them)
    assert "CREATE OR REPLACE TEMPORARY VIEW weights" in spark and "-- analytic: topk_neighbors" in spark
    assert "CREATE OR REPLACE TEMPORARY VIEW datamodels" not in spark
    assert "-- analytic: leakage(" not in spark
    with pytest.raises(QueryError, match=r"unknown view or macro 'nope'"):
        view_sql(st.root, "spark", ["nope"])
    with pytest.raises(QueryError, match=r"models: CAST\(… AS BIT\)"):
        view_sql(st.root, "bigquery", ["models"])
    with pytest.raises(QueryError, match=r"margins: read_parquet\(\)"):
        view_sql(st.root, "postgres", ["margins"])
    r = CliRunner().invoke(cli, ["views", str(st.root), "--dialect", "bigquery", "--view", "models"])
    assert r.exit_code == 1 and "models" in r.output and "BIT" in r.output
    r = CliRunner().invoke(cli, ["views", str(st.root), "--dialect", "spark", "--view", "fits"])
    assert r.exit_code == 0 and "VIEW fits" in r.output
    r = CliRunner().invoke(cli, ["views", str(st.root), "--location", "s3a://b/x"])
    assert r.exit_code == 2 and "--dialect spark" in r.output
    r = CliRunner().invoke(cli, ["views", str(st.root), "--dialect", "oracle"])
    assert r.exit_code == 2


def test_duckdb_only_macros_are_detected():
    import sqlglot
    from dmstore.dialects import problems as _problems
    for sql, what in [("SELECT max_by(a, b, 3) FROM t", "max_by(…, k)"),
                      ("SELECT list(a ORDER BY b) FROM t", "list(… ORDER BY …)"),
                      ("SELECT get_bit(m, 3) FROM t", "get_bit()")]:
        assert what in _problems(sqlglot.parse_one(sql, read="duckdb"), "spark"), sql
