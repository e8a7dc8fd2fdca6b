"""`dmstore views STORE` prints one script that runs as is in a plain DuckDB (no dmstore
connection, no UDFs): executed in a fresh `duckdb.connect()`, every relation and every
analytic gives the rows `dmstore.connect` gives, but for the columns that come from dmstore's
Python UDFs (NULL stand-ins there)."""
import math

import duckdb
from click.testing import CliRunner

import dmstore
from dmstore.cli import cli
from dmstore.engine import catalog

from .helpers import _calls, _duck, _duck_call, _key, _norm
from .linear import D

UDF_COLUMNS = {"eval_kendall": {"kendall"}, "estimator_comparison": {"kendall", "lds_ci_lo", "lds_ci_hi"},
               "frontier": {"lds_ci_lo", "lds_ci_hi"}}
COUNTS_OF_UDF = {"estimator_comparison": {"n_kendall"}}      # 0 in plain DuckDB


def same_rows(a_cols, a_rows, b_cols, b_rows, what, skip=()):
    assert list(a_cols) == list(b_cols), what
    keep = [i for i, c in enumerate(a_cols) if c not in skip]
    a = sorted((tuple(_norm(r[i]) for i in keep) for r in a_rows), key=_key)
    b = sorted((tuple(_norm(r[i]) for i in keep) for r in b_rows), key=_key)
    assert len(a) == len(b), what
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            if isinstance(u, float) and isinstance(v, float):
                assert math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(u) and math.isnan(v)), (what, x, y)
            else:
                assert u == v, (what, x, y)


def test_printed_script_runs_in_plain_duckdb(seeded, removals):
    st, lasso, dm = seeded
    r = CliRunner().invoke(cli, ["views", str(st.root)])
    assert r.exit_code == 0, r.output
    plain = duckdb.connect()
    plain.execute(r.output)
    plain.read_parquet(str(removals)).to_view("removals")
    ours = dmstore.connect(st, tables={"removals": removals})
    for v in catalog.view_names():
        a_cols, a_rows = _duck(plain, f"SELECT * FROM {v}")
        b_cols, b_rows = _duck(ours, f"SELECT * FROM {v}")
        assert b_rows, f"the seeded store must fill {v}"
        same_rows(a_cols, a_rows, b_cols, b_rows, v, UDF_COLUMNS.get(v, set()) | COUNTS_OF_UDF.get(v, set()))
        for c in UDF_COLUMNS.get(v, ()):     # the stand-ins are NULL, the real UDFs are not
            i = a_cols.index(c)
            assert all(row[i] is None for row in a_rows) and any(row[i] is not None for row in b_rows)
    calls = _calls(st, lasso, dm, removals)
    for name, cases in calls.items():
        a = catalog.get(name)
        for params, _ in cases:
            a_cols, a_rows = _duck_call(plain, a, params)
            b_cols, b_rows = _duck_call(ours, a, params)
            same_rows(a_cols, a_rows, b_cols, b_rows, f"{name}{params}", UDF_COLUMNS.get(name, set()))
    q = f"SELECT model_id, i, in_mask(mask, i) FROM models, range({D}) AS t(i)"
    same_rows(*_duck(plain, q), *_duck(ours, q), "in_mask")
    assert {m.name for m in catalog.macros()} - set(calls) == {"in_mask"}, "every analytic must be compared"


def test_view_option_keeps_what_the_named_objects_read(seeded):
    st, lasso, _ = seeded
    r = CliRunner().invoke(cli, ["views", str(st.root), "--view", "topk_neighbors"])
    assert r.exit_code == 0, r.output
    created = [line.split()[4].split("(")[0] for line in r.output.splitlines() if line.startswith("CREATE OR REPLACE")]
    assert created == ["examples", "fits", "weights", "dm_weights", "topk_neighbors"]
    plain = duckdb.connect()
    plain.execute(r.output)
    want = dmstore.connect(st).sql("SELECT * FROM topk_neighbors($f, 2)", params={"f": lasso}).fetchall()
    assert sorted(plain.sql("SELECT * FROM topk_neighbors($f, 2)", params={"f": lasso}).fetchall()) == sorted(want)
    r = CliRunner().invoke(cli, ["views", str(st.root), "--view", "nope"])
    assert r.exit_code == 1 and "unknown view or macro 'nope'" in r.output
    # Spark: --view keeps the named relation (and the relations it reads) only
    r = CliRunner().invoke(cli, ["views", str(st.root), "--dialect", "spark", "--view", "datamodels"])
    views = [line.split()[5] for line in r.output.splitlines() if line.startswith("CREATE OR REPLACE TEMPORARY VIEW")
             and not line.split()[5].startswith("dmstore_files")]
    assert views == ["fits", "weights", "datamodels"], views
