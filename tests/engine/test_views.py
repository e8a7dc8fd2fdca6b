"""Every view of the store contract checked against numpy on a seeded synthetic store."""
import numpy as np
import pyarrow.parquet as pq
import pytest

from dmstore.storage import schema
from dmstore.engine import view_names


def test_views_registered(filled):
    con = filled.connect()
    names = {r[0] for r in con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert set(view_names()) <= names
    assert {"examples", "models", "margins", "fit_runs", "fits", "weights", "datamodels"} <= names


def test_models_and_masks_as_bit(filled, synth):
    con = filled.connect()
    rows = con.sql("SELECT model_id, seed, role, n_included, mask::VARCHAR FROM models ORDER BY model_id").fetchall()
    assert [r[0] for r in rows] == list(range(60))
    assert [r[1] for r in rows] == synth.seeds.tolist()
    assert [r[3] for r in rows] == synth.masks.sum(1).tolist()
    for r, mask in zip(rows, synth.masks):
        assert r[4][: synth.d] == "".join("1" if b else "0" for b in mask)
    # in_mask(mask, i) agrees with numpy for every (model, train example)
    got = con.sql("SELECT model_id, i, in_mask(mask, i) AS inm FROM models, range(40) t(i) ORDER BY 1, 2").fetchnumpy()
    assert np.array_equal(got["inm"].reshape(60, 40), synth.masks)


def test_margins_view(filled, synth):
    con = filled.connect()
    got = con.sql("SELECT model_id, example_id, margin FROM margins ORDER BY 1, 2").fetchnumpy()
    assert np.array_equal(got["margin"].reshape(60, -1), synth.margins)
    # a typical analyst query: mean margin per target over eval models, against numpy
    q = con.sql("""SELECT example_id, avg(margin) FROM margins JOIN models USING (model_id)
                   WHERE role = 'eval' GROUP BY ALL ORDER BY 1""").fetchnumpy()
    assert np.allclose(q["avg(margin)"], synth.margins[50:].mean(0), rtol=1e-6)
    # mean margin with vs without train example 3, per test target (empirical influence)
    q = con.sql("""SELECT example_id, avg(margin) FILTER (in_mask(mask, 3)) - avg(margin) FILTER (NOT in_mask(mask, 3)) AS infl
                   FROM margins JOIN models USING (model_id) WHERE example_id >= 40 GROUP BY ALL ORDER BY 1""").fetchnumpy()
    Y, X = synth.margins[:, 40:].astype(np.float64), synth.masks[:, 3]
    assert np.allclose(q["infl"], Y[X].mean(0) - Y[~X].mean(0), rtol=1e-5)


def test_examples_view(filled):
    con = filled.connect()
    got = con.sql("SELECT split, count(*) FROM examples GROUP BY 1 ORDER BY 1").fetchall()
    assert got == [("test", 12), ("train", 40)]


def test_datamodels_view_joins_selected(filled, tmp_path):
    """datamodels = weights ⋈ fits where selected (written by hand here; fit tests write real ones)."""
    import pyarrow as pa
    from dmstore.storage import paths as L
    from dmstore.store.commit import commit_unit
    fits = pa.table({"fit_id": [7, 7], "experiment": ["exp"] * 2, "alpha": [0.5] * 2,
                     "estimator": ["lasso"] * 2, "target_id": [41, 41], "lam": [0.1, 0.01],
                     "bias": [1.0, 2.0], "train_mse": [1.0, 0.5], "val_mse": [1.1, 0.9],
                     "nnz": [1, 2], "selected": [False, True], "n_models": [50, 50],
                     "rel_gap": [1e-7, 1e-7], "n_iter": [3, 4], "converged": [True, True]})
    weights = pa.table({"fit_id": [7, 7, 7], "target_id": [41] * 3, "lam": [0.1, 0.01, 0.01],
                        "train_id": [5, 5, 9], "weight": [0.5, 0.7, -0.2]})
    commit_unit(filled, L.FITS, {"fits": fits, "weights": weights,
                                 "fit_runs": schema.arrow_schema("fit_runs").empty_table()}, "fit", {"fit_id": 7})
    got = filled.connect().sql("SELECT train_id, weight, bias FROM datamodels ORDER BY train_id").fetchall()
    assert got == [(5, pytest.approx(0.7), 2.0), (9, pytest.approx(-0.2), 2.0)]


@pytest.mark.parametrize("table", ["models", "margins", "examples"])
def test_written_files_match_schemas(filled, table):
    files = sorted(filled.root.glob(f"batches/*/{table}.parquet")) or [filled.root / "examples.parquet"]
    assert files
    want = schema.arrow_schema(table)
    for f in files:
        got = pq.read_schema(f)
        assert got.names[: len(want)] == want.names
        for fw in want:
            assert got.field(fw.name).type == fw.type, (f, fw.name)
            assert got.field(fw.name).nullable == fw.nullable, (f, fw.name)


def test_empty_store_views_work(store):
    con = store.connect()
    for v in view_names():
        assert con.sql(f"SELECT count(*) FROM {v}").fetchall() == [(0,)] or v == "examples"


def test_schema_files_are_complete():
    """Every table has a schema file with a meaning for each column, and a format version."""
    for t in schema.TABLES:
        spec = schema.table_spec(t)
        assert spec["format_version"] == schema.format_version() == 2
        assert all(c["meaning"] and c["type"] for c in spec["columns"])
