"""Golden files of the dialect translations (as sqlglot's fixtures): every relation and analytic
of the catalog in Spark SQL, and every view in PostgreSQL and BigQuery, is the text in
tests/fixtures/dialects/<name>.<dialect>.sql; what does not translate faithfully is listed in
<dialect>.refused.txt. The Spark files are the texts `dmstore.spark.register` runs
(`spark_sql.view_sql`, `spark_sql.analytic_sql`: equal here, byte for byte), and
tests/dialects/test_spark.py runs those in a real local Spark against DuckDB, so each golden
file's text is executed there once (it was run a second time here, costing two minutes of CI).

Regenerate after an intended change with DMSTORE_UPDATE_GOLDEN=1 (then read the diff)."""
import os
from pathlib import Path

import pytest

from dmstore.dialects import NoFaithfulTranslation, spark_sql, translate
from dmstore.engine import catalog

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
