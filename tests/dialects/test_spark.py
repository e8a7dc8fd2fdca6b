"""Every relation and every analytic in a real local Spark (pyspark, local[2]) against DuckDB on
one seeded store with several batches, fits and analyses: the same rows (integers exact, floats
within 1e-6 relative), through `dmstore.spark.register` and through the script that
`dmstore views --dialect spark` prints."""
import shutil

import numpy as np
import pytest

from dmstore.dialects import spark_sql

from .helpers import _calls, _duck, _duck_call, assert_same_rows
from .linear import D

pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("Spark needs a Java runtime (.ci/run installs one)", allow_module_level=True)


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
    from dmstore.spark import register_udfs
    register_udfs(spark, st.d)    # the script says: its Python UDFs first
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
