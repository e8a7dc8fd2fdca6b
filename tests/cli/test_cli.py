"""CLI exit codes (0 ok, 1 error, 2 usage), output formats, read-only queries, parameters."""
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from dmstore.cli import cli

from dmstore.testing import snapshot


def run(*args, input=None, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, env=env)


def test_init_info_schema(tmp_path):
    st = tmp_path / "s"
    r = run("init", st, "--train-size", 10, "--test-size", 3)
    assert r.exit_code == 0, r.output
    assert run("init", st, "--train-size", 10).exit_code == 1  # exists
    r = run("info", st, "--json")
    assert r.exit_code == 0 and json.loads(r.output)["examples"] == {"train": 10, "test": 3}
    r = run("schema", st, "models")
    assert r.exit_code == 0 and "mask" in r.output and "BIT" in r.output
    assert run("schema", st, "nope").exit_code == 2


def test_init_from_examples_file(tmp_path):
    f = tmp_path / "ex.csv"
    f.write_text("example_id,split,label,group_key,note\n0,train,1,a,x\n1,train,0,b,y\n2,test,1,a,z\n")
    r = run("init", tmp_path / "s", "--examples", f)
    assert r.exit_code == 0, r.output
    r = run("query", tmp_path / "s", "SELECT example_id, group_key, note FROM examples ORDER BY 1", "--format", "csv")
    assert r.output.splitlines() == ["example_id,group_key,note", "0,a,x", "1,b,y", "2,a,z"]
    bad = tmp_path / "bad.csv"
    bad.write_text("example_id,split\n0,test\n1,train\n")
    r = run("init", tmp_path / "s2", "--examples", bad)
    assert r.exit_code == 1 and "train split comes first" in r.output
    assert not (tmp_path / "s2").exists()


def test_usage_errors_exit_2(tmp_path):
    assert run("init", tmp_path / "s").exit_code == 2            # no size
    assert run("query").exit_code == 2                            # no args
    assert run("nope").exit_code == 2
    assert run("query", tmp_path / "s", "select 1", "--format", "xml").exit_code == 2


def test_query_formats(filled, tmp_path):
    s = filled.root
    q = "SELECT model_id, seed, role FROM models WHERE model_id < 3 ORDER BY 1"
    r = run("query", s, q)
    assert r.exit_code == 0 and r.output.splitlines()[0].split() == ["model_id", "seed", "role"]
    r = run("query", s, q, "--format", "csv")
    assert r.output.splitlines()[1].startswith("0,")
    rows = json.loads(run("query", s, q, "--format", "json").output)
    assert [x["model_id"] for x in rows] == [0, 1, 2]
    lines = run("query", s, q, "--format", "jsonl").output.splitlines()
    assert [json.loads(x)["role"] for x in lines] == ["fit"] * 3
    out = tmp_path / "q.parquet"
    assert run("query", s, q, "--format", "parquet", "-o", out).exit_code == 0
    assert pq.read_table(out).num_rows == 3
    assert run("query", s, q, "--format", "parquet").exit_code == 2  # needs -o: a usage error


def test_query_params_and_stdin(filled):
    s = filled.root
    r = run("query", s, "SELECT count(*) AS n FROM models WHERE role = $r AND model_id >= $lo",
            "-p", "r", "fit", "-p", "lo", "10", "--format", "jsonl")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["n"] == 30
    r = run("query", s, "-", "--format", "csv", input="SELECT count(*) AS n FROM margins")
    assert r.output.splitlines() == ["n", str(60 * 52)]


@pytest.mark.parametrize("sql", [
    "DROP VIEW models", "CREATE TABLE t AS SELECT 1", "COPY (SELECT 1) TO '/tmp/x.csv'",
    "ATTACH '/tmp/x.db'", "INSTALL httpfs", "LOAD httpfs", "INSERT INTO t VALUES (1)",
    "SET threads = 1", "PRAGMA version", "SELECT 1; DROP VIEW models", "SELECT 1 INTO t",
    "SELEC 1 FROM", "UPDATE t SET a = 1", "DELETE FROM t",
])
def test_query_refuses_non_reads(filled, sql):
    before = snapshot(filled.root)
    r = run("query", filled.root, sql)
    assert r.exit_code == 1, (sql, r.output)
    assert r.output.startswith("Error: ")
    assert snapshot(filled.root) == before


def test_query_errors_are_exit_1(filled):
    r = run("query", filled.root, "SELECT no_such_column FROM models")
    assert r.exit_code == 1 and "no_such_column" in r.output


def test_env_store(filled):
    env = {"DMSTORE_STORE": str(filled.root)}
    r = run("query", "SELECT count(*) AS n FROM models", "--format", "csv", env=env)
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == ["n", "60"]
    assert run("info", env=env).exit_code == 0
    r = run("export", "margins", "-o", filled.root.parent / "y.parquet", env=env)   # optional 2nd argument
    assert r.exit_code == 0 and pq.read_table(filled.root.parent / "y.parquet").num_rows == 60 * 52, r.output
    r = run("query", filled.root.parent / "wrong", "SELECT 1", env=env)              # a wrong path: said so
    assert r.exit_code == 1 and "wrong: not a dmstore store" in r.output, r.output
    r = run("query", filled.root, "SELECT 1 AS x", "--csv", env={"DMSTORE_STORE": "/nope"})
    assert r.exit_code == 0 and r.output.splitlines() == ["x", "1"], r.output


def test_ingest_release_cli_and_idempotent(tmp_path, synth):
    from dmstore.testing import write_release
    rel = write_release(tmp_path / "rel", synth.masks, test=synth.margins[:, 40:].astype(np.float16))
    st = tmp_path / "s"
    run("init", st, "--train-size", 40, "--test-size", 12)
    r = run("ingest", "release", st, rel, "--alpha", 0.5, "--experiment", "c", "--eval-last", 5)
    assert r.exit_code == 0 and "added 60" in r.output, r.output
    before = snapshot(st)
    r = run("ingest", "release", st, rel, "--alpha", 0.5, "--experiment", "c", "--eval-last", 5)
    assert r.exit_code == 0 and "skipped 60" in r.output
    assert snapshot(st) == before
    r = run("ingest", "release", st, rel, "--alpha", 0.2, "--experiment", "c")
    assert r.exit_code == 1 and "train_masks_20pct.npy" in r.output
    r = run("ingest", "release", st, rel, "--experiment", "c")
    assert r.exit_code == 2


def test_export(filled, tmp_path):
    s = filled.root
    for fmt in ("parquet", "csv", "json", "jsonl"):
        out = tmp_path / f"m.{fmt}"
        r = run("export", s, "margins", "--format", fmt, "-o", out)
        assert r.exit_code == 0, r.output
        assert out.exists() and out.stat().st_size > 0
    assert len(json.loads((tmp_path / "m.json").read_text())) == 60 * 52
    r = run("export", s, "--sql", "SELECT model_id, role FROM models", "--partition-by", "role",
            "-o", tmp_path / "parts")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == ["role=eval", "role=fit", "role=val"]
    assert run("export", s, "nope", "-o", tmp_path / "x").exit_code == 1
    assert run("export", s, "-o", tmp_path / "x").exit_code == 2
    assert run("export", s, "--sql", "DROP VIEW models", "-o", tmp_path / "x").exit_code == 1


def test_python_m_dmstore(tmp_path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "dmstore", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "dmstore" in r.stdout


def test_query_table_option(filled, tmp_path):
    f = tmp_path / "sets.csv"
    f.write_text("set_id,target_id,train_id\n0,41,3\n0,41,5\n")
    r = run("query", filled.root, "SELECT count(*) AS n, sum(train_id) AS s FROM sets", "--attach", f"sets={f}",
            "--format", "csv")
    assert r.exit_code == 0 and r.output.splitlines() == ["n,s", "2,8"], r.output
    assert run("query", filled.root, "SELECT 1", "--attach", "sets").exit_code == 2
    assert run("query", filled.root, "SELECT 1", "--attach", f"sets={tmp_path}/nope.csv").exit_code == 1


def test_migrate(tmp_path):
    import json
    st = tmp_path / "s"
    run("init", st, "--train-size", 4)
    r = run("migrate", st)
    assert r.exit_code == 0 and "nothing to migrate" in r.output
    man = st / "dmstore.json"
    j = json.loads(man.read_text())
    j["format_version"] = 0
    man.write_text(json.dumps(j))
    r = run("info", st)
    assert r.exit_code == 1 and "dmstore migrate" in r.output
    r = run("migrate", st)
    assert r.exit_code == 1 and "no migration from format version 0" in r.output


def test_info_text_and_init_from_env(filled, tmp_path):
    r = run("info", filled.root)
    assert r.exit_code == 0 and "exp  alpha=0.5  role=fit: 40 models on 40 masks" in r.output
    assert "role=eval: 10 models" in r.output and "bytes on disk" in r.output
    st = tmp_path / "envstore"
    r = run("init", "--train-size", 5, env={"DMSTORE_STORE": str(st)})
    assert r.exit_code == 0 and (st / "dmstore.json").exists()


def test_fit_targets_by_ids_and_split(filled):
    r = run("fit", filled.root, "--experiment", "exp", "--alpha", 0.5, "--targets", "40-42,45", "--lambdas", 3,
            "--lambda-min-ratio", 0.2)
    assert r.exit_code == 0 and "on 4 targets" in r.output, r.output
    r = run("query", filled.root, "SELECT list(DISTINCT target_id ORDER BY target_id) AS t FROM fits", "--format", "jsonl")
    assert json.loads(r.output)["t"] == [40, 41, 42, 45]
    r = run("fit", filled.root, "--experiment", "exp", "--alpha", 0.5, "--targets", "train", "--lambdas", 3,
            "--lambda-min-ratio", 0.2)
    assert r.exit_code == 0 and "on 40 targets" in r.output
    r = run("fit", filled.root, "--experiment", "exp", "--alpha", 0.5, "--targets", "nonsense")
    assert r.exit_code == 1 and "expected a split" in r.output
    r = run("info", filled.root)
    assert "fit 1: lasso on exp alpha=0.5, 4 targets" in r.output and "fit 2: lasso on exp alpha=0.5, 40 targets" in r.output


def test_ingest_parquet_groups_experiments(filled, tmp_path, synth):
    from dmstore.engine import export
    export(filled.root, tmp_path / "m1.parquet", sql="SELECT * REPLACE ('a' AS experiment) FROM models WHERE model_id < 30")
    export(filled.root, tmp_path / "m2.parquet", sql="SELECT * REPLACE ('b' AS experiment) FROM models WHERE model_id >= 30")
    export(filled.root, tmp_path / "y.parquet", "margins")
    st = tmp_path / "o"
    run("init", st, "--train-size", synth.d, "--test-size", synth.n_test)
    r = run("ingest", "parquet", st, tmp_path / "m1.parquet", tmp_path / "m2.parquet", tmp_path / "y.parquet")
    assert r.exit_code == 0 and "added 60" in r.output, r.output
    from dmstore import Store
    s = Store.open(st)
    assert np.array_equal(s.mask_matrix("a", 0.5), synth.masks[:30])
    assert np.array_equal(s.margin_matrix("b", 0.5), synth.margins[30:])


def test_output_shortcuts_and_extensions(filled, tmp_path):
    s = filled.root
    q = "SELECT model_id, role FROM models WHERE model_id < 2 ORDER BY 1"
    assert run("query", s, q, "--csv").output.splitlines() == ["model_id,role", "0,fit", "1,fit"]
    assert [json.loads(x)["model_id"] for x in run("query", s, q, "--nl").output.splitlines()] == [0, 1]
    assert len(json.loads(run("query", s, q, "--json").output)) == 2
    assert run("query", s, q, "--table").output.split()[:2] == ["model_id", "role"]
    for ext, check in ((".csv", lambda p: p.read_text().startswith("model_id,role\n")),
                       (".jsonl", lambda p: json.loads(p.read_text().splitlines()[1])["model_id"] == 1),
                       (".parquet", lambda p: pq.read_table(p).num_rows == 2)):
        out = tmp_path / f"q{ext}"
        r = run("query", s, q, "-o", out)
        assert r.exit_code == 0 and check(out), (ext, r.output)
    assert run("query", s, q, "--csv", "--json").exit_code == 2                  # two formats
    assert run("query", s, q, "--format", "json", "--csv").exit_code == 2
    assert run("query", s, q, "--csv", "-o", tmp_path / "x.parquet").exit_code == 2   # -o says otherwise
    assert not (tmp_path / "x.parquet").exists()
    r = run("query", s, q, "--csv", "-o", "-")
    assert r.exit_code == 0 and r.output.startswith("model_id,role") and not Path("-").exists()
    assert run("export", s, "margins").exit_code == 2                            # no -o
    assert run("export", s, "margins", "--csv", "--partition-by", "example_id", "-o", tmp_path / "p").exit_code == 2
    r = run("query", s, q, "-o", tmp_path)                                       # a directory
    assert r.exit_code == 1 and "cannot write" in r.output


def test_macros_lists_every_analytic_with_its_parameters(filled):
    from dmstore.engine import objects
    r = run("macros", filled.root, "--details", "--nl")
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in r.output.splitlines()]
    names = {x["signature"].split("(")[0] for x in rows}
    from dmstore.engine.udfs import BUILTINS as BUILTIN
    want = {o.name for o in objects().values() if not o.is_view and not o.requires}  # others need a column
    want |= set(BUILTIN)                                                               # and the Python UDFs
    assert names == want and {"topk_neighbors", "dm_removal_effect", "dm_predict"} <= names
    top = next(x for x in rows if x["signature"].startswith("topk_neighbors"))
    assert top["signature"] == "topk_neighbors(fit, k, lam := NULL)" and "k INTEGER" in top["parameters"]
    assert top["purpose"].startswith("Paper section 4.2")
    views = run("macros", filled.root, "--all", "--csv").output.splitlines()
    assert any(x.startswith("view,models,One row per trained model") for x in views), views


def test_console_script_points_into_the_package():
    """The script is `dmstore.cli:main`: no generic top-level module named `cli` is installed."""
    from importlib.metadata import distribution
    eps = [e for e in distribution("dmstore").entry_points if e.group == "console_scripts"]
    assert [(e.name, e.value) for e in eps] == [("dmstore", "dmstore.cli:main")]
    top = (distribution("dmstore").read_text("top_level.txt") or "").split()
    assert "cli" not in top
