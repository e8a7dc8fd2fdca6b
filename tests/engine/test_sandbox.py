"""Every read connection is sandboxed, and export never writes into the store: each write
vector found against the read-only query is refused and leaves the store byte-identical."""
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import dmstore
from dmstore.cli import cli
from dmstore import QueryError

from dmstore.testing import snapshot


def run(*args, **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], **kw)


def vectors(root: Path, tmp: Path) -> list[str]:
    return [
        f"SELECT * FROM enable_profiling(format := 'json', save_location := '{root}/dmstore.json'); SELECT 1",
        f"SELECT * FROM enable_logging(storage := 'file', storage_path := '{root}/batches')",
        f"SELECT * FROM enable_logging(storage := 'file', storage_path := '{tmp}/logs')",
        "SELECT * FROM read_csv('/etc/passwd')",
        f"SELECT * FROM read_parquet('{root}/batches/*/models.parquet')",      # a glob, not the snapshot
        f"SELECT * FROM glob('{root}/*')",
        "SELECT * FROM read_csv('https://example.com/x.csv')",                  # would autoload httpfs
        "SELECT * FROM sqlite_scan('x.db', 't')",                               # would autoload sqlite
    ]


def test_query_vectors_are_refused_and_change_nothing(filled, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    root = filled.root
    before = snapshot(root)
    for sql in vectors(root, tmp_path):
        r = run("query", root, sql)
        assert r.exit_code == 1 and r.output.startswith("Error:"), (sql, r.output)
        r = run("export", root, "--sql", sql.split("; ")[0], "-o", tmp_path / "out.parquet")
        assert r.exit_code == 1 and r.output.startswith("Error:"), (sql, r.output)
        assert not (tmp_path / "out.parquet").exists()
    r = run("query", root, "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', "
            "'lock_configuration', 'autoload_known_extensions', 'autoinstall_known_extensions') ORDER BY 1", "--csv")
    assert r.output.splitlines()[1:] == ["autoinstall_known_extensions,false", "autoload_known_extensions,false",
                                         "enable_external_access,false", "lock_configuration,true"], r.output
    assert snapshot(root) == before
    assert not (tmp_path / "logs").exists()
    assert not (home / ".duckdb").exists()
    assert dmstore.connect(root).sql("SELECT count(*) FROM models").fetchall() == [(60,)]


def test_reading_outside_the_store_says_why(filled):
    with pytest.raises(QueryError, match="sandboxed: they read the store's own files"):
        dmstore.engine.query(filled.root, "SELECT * FROM read_csv('/etc/passwd')")
    con = filled.connect()
    with pytest.raises(Exception, match="disabled by configuration|locked"):
        con.execute("SET enable_external_access = true")


def test_table_files_are_readable_and_nothing_else(filled, tmp_path):
    f = tmp_path / "sets.csv"
    f.write_text("set_id,target_id,train_id\n0,41,3\n")
    other = tmp_path / "other.csv"
    other.write_text("a\n1\n")
    t = dmstore.engine.query(filled.root, "SELECT count(*) AS n FROM sets", tables={"sets": f})
    assert t.to_pylist() == [{"n": 1}]
    with pytest.raises(QueryError, match="sandboxed"):
        dmstore.engine.query(filled.root, f"SELECT * FROM read_csv('{other}')", tables={"sets": f})


def test_export_never_writes_into_the_store(filled, tmp_path):
    root = filled.root
    before = snapshot(root)
    batch = next(p for p in (root / "batches").iterdir() if p.name != "0-empty")
    for out in (batch / "margins.parquet", root / "new.parquet", root / "batches" / "x" / "y.parquet", root):
        r = run("export", root, "margins", "-o", out)
        assert r.exit_code == 1 and "inside the store" in r.output, r.output
    r = run("export", root, "margins", "--partition-by", "example_id", "-o", root / "parts")
    assert r.exit_code == 1 and "inside the store" in r.output
    os.symlink(root / "batches", tmp_path / "link")          # a path that leads inside by a link
    r = run("export", root, "margins", "-o", tmp_path / "link" / "m.parquet")
    assert r.exit_code == 1 and "inside the store" in r.output
    assert snapshot(root) == before
    assert dmstore.connect(root).sql("SELECT count(*) FROM margins").fetchall() == [(60 * 52,)]


def test_partitioned_export_refuses_a_non_empty_directory(filled, tmp_path):
    out = tmp_path / "parts"
    r = run("export", filled.root, "--sql", "SELECT model_id, role FROM models", "--partition-by", "role", "-o", out)
    assert r.exit_code == 0, r.output
    stale = out / "role=old"
    stale.mkdir()
    (stale / "x.parquet").write_bytes(b"stale")
    r = run("export", filled.root, "--sql", "SELECT model_id, role FROM models WHERE role = 'fit'",
            "--partition-by", "role", "-o", out)
    assert r.exit_code == 1 and "--overwrite" in r.output
    assert stale.exists()
    r = run("export", filled.root, "--sql", "SELECT model_id, role FROM models WHERE role = 'fit'",
            "--partition-by", "role", "-o", out, "--overwrite")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["role=fit"]
    import pyarrow.dataset as ds
    assert ds.dataset(out, partitioning="hive").count_rows() == 40


def test_export_to_stdout(filled):
    r = run("export", filled.root, "--sql", "SELECT model_id, mask FROM models WHERE model_id < 2",
            "--format", "jsonl", "-o", "-")
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    import base64
    import numpy as np
    from dmstore.testing import Synth
    masks = Synth().masks
    assert [np.unpackbits(np.frombuffer(base64.b64decode(x["mask"]), np.uint8))[:40].astype(bool).tolist()
            for x in rows] == masks[:2].tolist()
    assert not Path("-").exists()


def test_masks_have_one_encoding_in_every_text_output(filled, tmp_path):
    """base64 of the packed bits in query and export alike, JSON, JSON lines and CSV."""
    import base64
    import csv
    import io
    import numpy as np
    from dmstore.testing import Synth
    want = base64.b64encode(np.packbits(Synth().masks[0]).tobytes()).decode()
    q = "SELECT mask FROM models WHERE model_id = 0"
    got = [json.loads(run("query", filled.root, q, "--json").stdout)[0]["mask"],
           json.loads(run("query", filled.root, q, "--nl").stdout)["mask"],
           next(csv.DictReader(io.StringIO(run("query", filled.root, q, "--csv").stdout)))["mask"]]
    for fmt in ("json", "jsonl", "csv"):
        out = tmp_path / f"m.{fmt}"
        assert run("export", filled.root, "--sql", q, "-o", out).exit_code == 0
        text = out.read_text()
        got.append(json.loads(text)[0]["mask"] if fmt == "json" else json.loads(text)["mask"] if fmt == "jsonl"
                   else next(csv.DictReader(io.StringIO(text)))["mask"])
    assert got == [want] * 6
