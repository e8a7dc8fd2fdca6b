"""Golden files of the dialect translations (as sqlglot's fixtures): every relation and analytic
of the catalog in Spark SQL, and every view in PostgreSQL and BigQuery, is the text in
tests/fixtures/dialects/<name>.<dialect>.sql; what does not translate faithfully is listed in
<dialect>.refused.txt. The Spark files are executed in a real local Spark against DuckDB.

Regenerate after an intended change with DMSTORE_UPDATE_GOLDEN=1 (then read the diff)."""
import os
import shutil
from pathlib import Path

import pytest

from dmstore.dialects import NoFaithfulTranslation, spark_sql, translate
from dmstore.engine import catalog

from .helpers import _calls, _duck, _duck_call, assert_same_rows

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "dialects"
UPDATE = os.environ.get("DMSTORE_UPDATE_GOLDEN") == "1"
OTHER = ("postgres", "bigquery")


def _spark_texts() -> dict:
    out = {}
    for name in spark_sql.relation_names():
        out[name] = spark_sql.view_sql(name)
    for o in catalog.macros():
        out[o.name] = o.spark if o.name in spark_sql.FUNCTIONS else spark_sql.analytic_sql(o.name)
    return out


def _other_texts(dialect: str) -> tuple[dict, list]:
    texts, refused = {}, []
    for o in catalog.views():
        try:
            texts[o.name] = translate(o.body, dialect)
        except NoFaithfulTranslation as e:
            refused.append(f"{o.name}: {e}")
    return texts, refused


def _check(path: Path, text: str):
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.rstrip() + "\n")
    assert path.exists(), f"no golden file {path.name}: run with DMSTORE_UPDATE_GOLDEN=1"
    assert path.read_text() == text.rstrip() + "\n", f"{path.name} changed: rerun with DMSTORE_UPDATE_GOLDEN=1 and read the diff"


def test_spark_texts_equal_the_golden_files():
    texts = _spark_texts()
    assert set(texts) == set(catalog.objects())
    for name, text in texts.items():
        _check(GOLDEN / f"{name}.spark.sql", text)
    stale = {p.name for p in GOLDEN.glob("*.spark.sql")} - {f"{n}.spark.sql" for n in texts}
    assert not stale, f"golden files of objects that no longer exist: {sorted(stale)}"


@pytest.mark.parametrize("dialect", OTHER)
def test_other_dialects_equal_the_golden_files(dialect):
    import sqlglot
    texts, refused = _other_texts(dialect)
    for name, text in texts.items():
        _check(GOLDEN / f"{name}.{dialect}.sql", text)
        sqlglot.parse_one(text, read=dialect)   # the golden text parses as that dialect
    _check(GOLDEN / f"{dialect}.refused.txt", "\n".join(refused))
    assert texts and refused   # some translate (derived views), some cannot (they read Parquet)


def test_golden_spark_files_execute_and_equal_duckdb(seeded, spark, removals):
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("Spark needs a Java runtime (.ci/run installs one)")
    """The golden text itself, run in Spark: relations created from their files give DuckDB's
    rows; each analytic's file, bound with its parameters, gives the DuckDB macro's rows."""
    import dmstore
    st, lasso, dm = seeded
    snap = st.snapshot()
    cols = st.examples().column_names
    from dmstore.spark import register_udfs
    register_udfs(spark, st.d)    # eval_kendall and estimator_comparison call Python UDFs
    for stmt in spark_sql.source_sql(snap, Path(st.root).resolve().as_uri()):
        spark.sql(stmt)
    spark.sql((GOLDEN / "in_mask.spark.sql").read_text())
    con = dmstore.connect(st, tables={"removals": removals})
    for name in spark_sql.relation_names():
        if not spark_sql.available(name, cols):
            continue
        spark.sql((GOLDEN / f"{name}.spark.sql").read_text())
        if name != "models":
            c, rows = _duck(con, f"SELECT * FROM {name}")
            assert_same_rows(c, rows, spark.table(name), f"golden {name}")
    analytics = spark_sql.analytics()
    for name, calls in _calls(st, lasso, dm, removals, spark).items():
        text = (GOLDEN / f"{name}.spark.sql").read_text()
        for params, frames in calls:
            args = dict(params)
            for p, df in frames.items():
                df.createOrReplaceTempView(f"golden_{p}")
                args[p] = f"golden_{p}"
            a = analytics[name]
            args = {p: args.get(p) for p, _ in a.params}
            c, rows = _duck_call(con, a, params)
            assert_same_rows(c, rows, spark.sql(text, args=args), f"golden {name} {params}")
