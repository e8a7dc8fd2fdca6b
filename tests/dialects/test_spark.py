"""Every relation and every analytic in a real local Spark (pyspark, local[2]) against DuckDB on
one seeded store with several batches, fits and analyses: the same rows (integers exact, floats
within 1e-6 relative), through `dmstore.spark.register` and through the script that
`dmstore views --dialect spark` prints."""
import decimal
import math
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dmstore import Store
from dmstore.dialects import spark as spark_sql
from dmstore.analysis import counterfactual, support
from dmstore.analysis import embed
from dmstore.fit import fit
from dmstore.train import train

pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("Spark needs a Java runtime (.ci/run installs one)", allow_module_level=True)

D, NT = 24, 8


class Linear:
    """A plug-in recipe: margins linear in the mask (plus seed jitter); examples with labels,
    group keys (some test examples share a train example's) and feature vectors."""
    name = "lin"

    def __init__(self):
        rng = np.random.default_rng(5)
        self.theta = rng.normal(size=(D, D + NT)) * (rng.random((D, D + NT)) < 0.4)
        self.labels = rng.integers(0, 3, D + NT).astype(np.int32)
        self.groups = [f"g{i}" for i in range(D)] + [f"g{i}" if i % 2 else f"t{i}" for i in range(NT)]
        self.features = rng.normal(size=(D + NT, 3)).astype(np.float32)

    def examples(self):
        return pa.table({"example_id": np.arange(D + NT, dtype=np.int32),
                         "split": ["train"] * D + ["test"] * NT, "label": self.labels,
                         "group_key": self.groups,
                         "features": pa.array(list(self.features), pa.list_(pa.float32()))})

    def train(self, masks, seeds):
        jitter = np.random.default_rng(np.asarray(seeds) % 1000).normal(scale=0.3, size=(len(seeds), D + NT))
        m = (masks @ self.theta + jitter + 0.5).astype(np.float32)
        return {"margins": m, "train_accuracy": (m[:, :D] > 0).mean(1), "test_accuracy": (m[:, D:] > 0).mean(1)}


REC = Linear()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    root = tmp_path_factory.mktemp("spark") / "s"
    train(root, "tests.dialects.test_spark:REC", models=450, batch=150, role="fit", progress=False)   # 3 batches
    train(root, "tests.dialects.test_spark:REC", models=80, batch=80, role="val", progress=False)
    train(root, "tests.dialects.test_spark:REC", models=40, batch=80, role="eval", repeats=2, progress=False)
    st = Store.open(root, "a")
    lasso = fit(st, "lin", 0.5, n_lambdas=5, keep_path=True, dtype="float64", progress=False).fit_id
    dm = fit(st, "lin", 0.5, estimator="diff_means", progress=False).fit_id
    counterfactual(st, lasso, targets=[D, D + 1], ks=(1, 2), trials=1)
    support(st, lasso, targets=[D, D + 2], ks=(1, 2, 4), trials=1)
    embed(st, lasso, pca=3, clusters=2, seed=0)
    return st, lasso, dm


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    from pyspark.sql import SparkSession
    s = (SparkSession.builder.master("local[2]").appName("dmstore-tests")   # no spark-warehouse/ in the checkout
         .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("spark-warehouse")))
         .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
         .config("spark.sql.shuffle.partitions", "2").config("spark.driver.memory", "1g")
         .getOrCreate())
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


def _norm(v):
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    if isinstance(v, (list, tuple, np.ndarray)):
        return tuple(_norm(x) for x in v)
    return v


def _key(row):
    return tuple((0, "") if v is None else (1, round(v, 4)) if isinstance(v, float) else (1, str(v))
                 for v in row)


def assert_same_rows(duck_cols, duck_rows, spark_df, what):
    assert [c.lower() for c in spark_df.columns] == [c.lower() for c in duck_cols], what
    got = sorted((tuple(_norm(v) for v in r) for r in spark_df.collect()), key=_key)
    want = sorted((tuple(_norm(v) for v in r) for r in duck_rows), key=_key)
    assert len(got) == len(want), f"{what}: {len(got)} rows in Spark, {len(want)} in DuckDB"
    for g, w in zip(got, want):
        for a, b in zip(g, w):
            if isinstance(b, float) or isinstance(a, float):
                assert a is not None and b is not None and (math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
                                                             or (math.isnan(a) and math.isnan(b))), (what, g, w)
            elif isinstance(b, tuple) and b and isinstance(b[0], float):
                assert np.allclose(a, b, rtol=1e-6), (what, g, w)
            else:
                assert a == b, (what, g, w)


def _duck(con, sql, params=None):
    rel = con.sql(sql, params=params)
    return rel.columns, rel.fetchall()


def test_every_relation_equals_duckdb(seeded, spark):
    st, lasso, dm = seeded
    from dmstore.spark import register
    sp = register(spark, st)
    con = st.connect()
    for rel in spark_sql.relation_names():
        if rel == "models":
            continue
        cols, rows = _duck(con, f"SELECT * FROM {rel}")
        assert rows, f"the seeded store must fill {rel}"
        assert_same_rows(cols, rows, sp.table(rel), rel)
    # models: every column but the mask equal; the mask is the packed BINARY of the stored bits
    cols, rows = _duck(con, "SELECT * EXCLUDE (mask) FROM models")
    assert_same_rows(cols, rows, spark.sql("SELECT * EXCEPT (mask) FROM models"), "models")
    got = {r.model_id: bytes(r.mask) for r in spark.sql("SELECT model_id, mask FROM models").collect()}
    ids = st.models("lin", 0.5, columns=["model_id"])["model_id"].to_numpy()
    X = st.mask_matrix("lin", 0.5)   # rows by ascending model_id = ids
    assert len(got) == ids.size and all(got[i] == np.packbits(X[k]).tobytes() for k, i in enumerate(ids))
    # in_mask(mask, i) in Spark = the bit in numpy = in_mask in DuckDB
    bits = spark.sql(f"SELECT model_id, id AS i, in_mask(mask, CAST(id AS INT)) AS b FROM models, range({D})").collect()
    row = {m: k for k, m in enumerate(ids)}
    assert len(bits) == ids.size * D and all(X[row[r.model_id], r.i] == r.b for r in bits)
    cols, rows = _duck(con, f"SELECT model_id, i, in_mask(mask, i) FROM models, range({D}) AS t(i)")
    assert_same_rows(cols, rows, spark.sql(f"SELECT model_id, id AS i, in_mask(mask, CAST(id AS INT)) AS b "
                                           f"FROM models, range({D})").toDF(*cols), "in_mask")


def _calls(st, lasso, dm, removals_path, spark):
    """analytic → list of (DuckDB SQL with $params, params, Spark keyword arguments)."""
    lam = st.connect().sql("SELECT lam FROM fits WHERE fit_id = $f AND NOT selected ORDER BY lam LIMIT 1 OFFSET 2",
                           params={"f": lasso}).fetchall()[0][0]
    mask = np.packbits(np.arange(D) % 3 == 0).tobytes()
    rem = spark.read.parquet(str(removals_path))
    return {
        "dm_weights": [({"fit": lasso}, {}), ({"fit": lasso, "lam": lam}, {})],
        "topk_neighbors": [({"fit": lasso, "k": 3}, {}), ({"fit": lasso, "k": 2, "lam": lam}, {}),
                           ({"fit": dm, "k": 4}, {})],
        "neighbor_label_agreement": [({"fit": lasso, "k": 3}, {})],
        "neighbor_features": [({"fit": lasso, "k": 2, "n_targets": 3}, {})],
        "leakage": [({"fit": lasso, "k": 3}, {})],
        "leakage_targets": [({"fit": lasso}, {})],
        "leakage_recall": [({"fit": lasso, "k": 3}, {}), ({"fit": dm, "k": 1}, {})],
        "leakage_recall_nn": [({"fit": lasso, "k": 3}, {})],
        "data_support": [({"fit": lasso}, {}), ({"fit": dm}, {}), ({"fit": lasso, "lam": lam}, {})],
        "data_support_cdf": [({"fit": lasso}, {})],
        "dm_removal_effect": [({"fit": lasso, "removals": "removals"}, {"removals": rem}),
                              ({"fit": lasso, "removals": "removals", "alpha": 0.25}, {"removals": rem})],
        "dm_predict": [({"fit": lasso, "target": D + 1, "mask": mask}, {}),
                       ({"fit": lasso, "target": 0, "mask": mask}, {})],   # not a target: NULL
        "eval_scatter": [({"fit": lasso, "n": 25}, {})],
    }


def _duck_call(con, a, params):
    """Call DuckDB macro `a`: required parameters by position, optional ones by name."""
    parts = []
    for p, default in a.params:
        if p in params:
            val = f"'{params[p]}'" if p in a.table_params else f"${p}"
            parts.append(val if default is None else f"{p} := {val}")
    bind = {p: v for p, v in params.items() if p not in a.table_params}
    if a.kind == "macro":
        return _duck(con, f"SELECT {a.name}({', '.join(parts)}) AS {a.name}", bind)
    return _duck(con, f"SELECT * FROM {a.name}({', '.join(parts)})", bind)


@pytest.fixture(scope="module")
def removals(seeded, tmp_path_factory):
    path = tmp_path_factory.mktemp("rem") / "removals.parquet"
    rows = [(0, D, 1), (0, D, 2), (0, D, 5), (1, D + 1, 0), (1, D + 1, 3), (1, D + 2, 0), (2, D + 3, 7),
            (3, D + 4, 100)]   # an id no weight has
    pq.write_table(pa.table({"set_id": [r[0] for r in rows], "target_id": pa.array([r[1] for r in rows], pa.int32()),
                             "train_id": pa.array([r[2] for r in rows], pa.int32())}), path)
    return path


def test_every_analytic_equals_duckdb(seeded, spark, removals):
    import dmstore
    from dmstore.spark import register
    st, lasso, dm = seeded
    sp = register(spark, st)
    con = dmstore.connect(st, tables={"removals": removals})
    calls = _calls(st, lasso, dm, removals, spark)
    assert set(calls) == set(spark_sql.analytics()) - {"in_mask"}, "every analytic must be compared"
    for name, cases in calls.items():
        a = spark_sql.analytics()[name]
        for params, spark_args in cases:
            cols, rows = _duck_call(con, a, params)
            null_ok = name == "dm_predict" and params["target"] == 0
            assert rows and (null_ok or any(v is not None for r in rows for v in r)), \
                f"{name}{params}: an empty case proves nothing"
            df = getattr(sp, name)(**{**params, **spark_args})
            assert_same_rows(cols, rows, df, f"{name}{params}")


def test_views_script_runs_in_spark_at_another_location(seeded, spark, tmp_path):
    """The script `dmstore views --dialect spark --location URI` prints runs as it is, reading
    the store's files at that location (here a copy; the original's batches are hidden)."""
    from click.testing import CliRunner
    from dmstore.cli import cli
    st, lasso, dm = seeded
    copy = tmp_path / "copy"
    shutil.copytree(st.root, copy)
    res = CliRunner().invoke(cli, ["views", str(st.root), "--dialect", "spark", "--location", copy.as_uri()])
    assert res.exit_code == 0, res.output
    text = res.output
    assert str(st.root) not in text.replace(str(copy), "")
    stmts = spark_sql.statements(text)
    queries = {name: sql for name, sql in stmts if name}
    assert set(queries) == set(spark_sql.analytics()) - {"in_mask"}   # in_mask is a function definition
    for name, sql in stmts:
        if not name:
            spark.sql(sql)
    assert {r.viewName for r in spark.sql("SHOW VIEWS").collect()} >= set(spark_sql.relation_names())
    files = spark.table("margins").inputFiles()
    assert files and all(str(copy) in f for f in files)
    con = st.connect()
    cols, rows = _duck(con, "SELECT * FROM topk_neighbors($f, 3)", {"f": lasso})
    assert_same_rows(cols, rows, spark.sql(queries["topk_neighbors"], args={"fit": lasso, "k": 3, "lam": None}),
                     "script topk_neighbors")
    cols, rows = _duck(con, "SELECT * FROM estimator_comparison")
    assert_same_rows(cols, rows, spark.table("estimator_comparison"), "script estimator_comparison")


def test_readme_spark_example_runs(seeded, spark, capsys):
    """The README's Spark example, on the seeded store (fit 1 is its LASSO fit)."""
    import re
    from pathlib import Path
    st, lasso, dm = seeded
    assert lasso == 1
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    sec = text[text.index("## Beyond one machine"):]
    code = re.search(r"```python\n(.*?)```", sec, re.S).group(1)
    assert 'register(spark, "runs")' in code
    exec(compile(code.replace('"runs"', repr(str(st.root))), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "target_label" in out and "lasso" in out and "diff_means" in out
