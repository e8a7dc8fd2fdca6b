"""Queries under stress (issue 16.7): several statements, deep nesting, a snapshot file gone, a
corrupted page while streaming, resource caps; and the small holes of 16.8."""
import json
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import dmstore
from dmstore import InputError, Store
from dmstore.cli import cli
from dmstore.storage import paths as P
from dmstore.storage.vacuum import vacuum
from dmstore.testing import alpha_masks, snapshot


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def no_traceback(r):
    assert r.exception is None or isinstance(r.exception, SystemExit), (r.output, repr(r.exception))


def test_several_statements_give_the_last_ones_rows(filled):
    r = run("query", filled.root, "SELECT 1 AS a; SELECT count(*) AS n FROM models", "--csv")
    assert r.exit_code == 0 and r.output == "n\n60\n", r.output
    r = run("query", filled.root, "SELECT 1 AS a; SELECT $x AS b", "-p", "x", "2")
    assert r.exit_code == 1 and "-p" in r.output and "single statement" in r.output, r.output


def test_deep_nesting_is_refused_cleanly(filled):
    ok = "SELECT " + "(" * 20 + "1" + ")" * 20 + " AS v"
    assert run("query", filled.root, ok, "--csv").output == "v\n1\n"
    deep = "SELECT " + "(" * 300 + "1" + ")" * 300 + " AS v"
    r = run("query", filled.root, deep)
    no_traceback(r)
    assert r.exit_code == 1 and "nests too deeply" in r.output, r.output


def test_a_missing_snapshot_file_says_so(filled, synth):
    filled.append("exp2", 0.5, synth.masks, synth.margins, synth.targets)
    later = sorted(p for p in (filled.root / "batches").iterdir() if p.name != P.EMPTY)[-1]
    (later / "margins.parquet").unlink()
    r = run("query", filled.root, "SELECT count(*) FROM margins")
    no_traceback(r)
    assert r.exit_code == 1 and "margins.parquet is missing" in r.output and "vacuum" in r.output, r.output
    assert "sandboxed" not in r.output


def test_a_read_error_midway_is_a_read_error_and_removes_the_partial_file(tmp_path):
    rng = np.random.default_rng(0)
    st = Store.create(tmp_path / "s", train_size=64, test_size=1000)
    m = 3000
    st.append("e", 0.5, alpha_masks(rng, m, 64, 0.5), rng.normal(size=(m, 1064)).astype(np.float32), np.arange(1064))
    f = next(p for p in (st.root / "batches").iterdir() if p.name != P.EMPTY) / "margins.parquet"
    meta = pq.ParquetFile(f).metadata
    assert meta.num_row_groups >= 3
    rg = meta.row_group(meta.num_row_groups - 1).column(2)   # the margins of the last row group
    data = bytearray(f.read_bytes())
    start = rg.data_page_offset
    data[start:start + 512] = b"\xff" * 512      # the page header of that column chunk: unreadable
    f.write_bytes(bytes(data))
    out = tmp_path / "out.csv"
    r = run("query", st.root, "SELECT * FROM margins", "-o", out)
    no_traceback(r)
    assert r.exit_code == 1 and "cannot write" not in r.output, r.output
    assert not out.exists()


def test_memory_limit_threads_and_spill_directory(filled, tmp_path):
    q = ("SELECT current_setting('memory_limit') AS m, current_setting('threads') AS t, "
         "current_setting('temp_directory') AS d")
    r = run("query", filled.root, q, "--memory-limit", "1GB", "--threads", "1", "--nl")
    row = json.loads(r.output)
    assert r.exit_code == 0 and row["t"] == 1 and row["m"].startswith("953.6"), r.output
    assert Path(row["d"]).parent == (filled.root / P.TMP).resolve()     # spills into the store's .tmp/
    default = json.loads(run("query", filled.root, q, "--nl").output)
    import duckdb
    plain = duckdb.connect().sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert default["m"] != plain                                        # not DuckDB's 80 %: half
    r = run("query", filled.root, "SELECT 1", "--memory-limit", "lots")
    assert r.exit_code == 1 and "--memory-limit 'lots'" in r.output, r.output
    assert not any(p.name.startswith("duckdb-spill") for p in (filled.root / P.TMP).iterdir())


def test_attach_cannot_shadow_a_store_relation(filled, tmp_path):
    f = tmp_path / "m.csv"
    f.write_text("model_id\n1\n")
    r = run("query", filled.root, "SELECT count(*) FROM models", "--attach", f"models={f}")
    assert r.exit_code == 1 and "'models' is the name of a store relation" in r.output and "--attach" in r.output, \
        r.output


def test_run_names_with_a_newline_are_refused(filled):
    from dmstore.fit import fit
    with pytest.raises(InputError, match="run 'x\\\\n'"):
        fit(filled, "exp", 0.5, shard=(0, 2), run="x\n")


def test_numbers_stored_as_text_are_refused(filled, tmp_path, synth):
    dmstore.engine.export(filled.root, tmp_path / "m.parquet", "models")
    dmstore.engine.export(filled.root, tmp_path / "y.parquet", "margins")
    t = pq.read_table(tmp_path / "m.parquet")
    t = t.set_column(t.schema.get_field_index("alpha"), "alpha", pa.array(["0.5"] * t.num_rows))
    pq.write_table(t, tmp_path / "m_text.parquet")
    before = snapshot(filled.root)
    r = run("ingest", "parquet", filled.root, tmp_path / "m_text.parquet", tmp_path / "y.parquet")
    assert r.exit_code == 1 and "column alpha has type string, not a number" in r.output, r.output
    y = pq.read_table(tmp_path / "y.parquet")
    y = y.set_column(2, "margin", pa.array([str(v) for v in y["margin"].to_pylist()]))
    pq.write_table(y, tmp_path / "y_text.parquet")
    r = run("ingest", "parquet", filled.root, tmp_path / "m.parquet", tmp_path / "y_text.parquet")
    assert r.exit_code == 1 and "column margin has type string" in r.output, r.output
    assert snapshot(filled.root) == before


def test_a_refused_ingest_leaves_the_id_counter(filled, synth):
    counter = filled.root / P.NEXT_ID
    before = counter.read_text()
    bad = synth.margins.copy()
    bad[55, 3] = np.nan                                       # in the last of several batches
    import dmstore.store.batch as B
    old, B.MAX_CELLS = B.MAX_CELLS, 52 * 10
    try:
        with pytest.raises(InputError, match="row 55"):
            filled.append("exp3", 0.5, synth.masks, bad, synth.targets)
    finally:
        B.MAX_CELLS = old
    assert counter.read_text() == before
    r = filled.append("exp3", 0.5, synth.masks[:2], synth.margins[:2], synth.targets)
    assert r.model_ids.tolist() == [int(before), int(before) + 1]   # the next ids, none skipped


def test_default_vacuum_cleans_killed_writers_orphans_and_log_temps(filled, synth):
    """A writer that died (its PID is gone on this host) leaves a unit, a temp entry and its lease;
    a stale log temp file is left by a crash mid-commit. Default vacuum removes them all."""
    from dmstore.storage import lease
    token = "feedfacefeedface"
    (filled.root / P.LEASES).mkdir(exist_ok=True)
    dead = 2 ** 22 + 11
    (filled.root / P.LEASES / f"{token}.json").write_text(json.dumps(
        {"token": token, "host": lease.host_id(), "hostname": "here", "pid": dead, "started": 0, "purpose": "ingest"}))
    src = next(p for p in (filled.root / "batches").iterdir() if p.name != P.EMPTY)
    orphan = filled.root / "batches" / f"00000000000000000009-{dead}-1~{token}"
    import shutil
    shutil.copytree(src, orphan)
    tmp_entry = filled.root / P.TMP / f"00000000000000000010-{dead}-2~{token}"
    tmp_entry.mkdir(parents=True)
    log_temp = filled.root / P.LOG / f".{1:020d}.json.{dead}.123"
    log_temp.write_text("{")
    old = time.time() - 2 * lease.TTL_S
    os.utime(log_temp, (old, old))
    r = vacuum(filled.root)
    assert r["deleted"] == [f"batches/{orphan.name}"] and r["bytes"] > 0
    assert not orphan.exists() and not tmp_entry.exists() and not log_temp.exists()
    assert not (filled.root / P.LEASES / f"{token}.json").exists()
    assert dmstore.connect(filled.root).sql("SELECT count(*) FROM models").fetchall() == [(60,)]
