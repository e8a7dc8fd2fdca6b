"""The commit log: snapshots, time travel, checkpoints, vacuum, and the v1 -> v2 migration."""
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import dmstore
from dmstore.cli import cli
from dmstore import Store, StoreError
from dmstore.storage import lease, log
from dmstore.store.compact import compact
from dmstore.storage.vacuum import vacuum

from dmstore.testing import Synth, snapshot

V1 = Path(__file__).resolve().parents[1] / "data" / "store_v1"


def counts(root, **kw):
    con = dmstore.connect(root, **kw)
    return con.sql("SELECT (SELECT count(*) FROM models), (SELECT count(DISTINCT model_id) FROM models), "
                   "(SELECT count(*) FROM margins)").fetchall()[0]


def test_each_append_is_one_version_and_as_of_reads_the_past(store, synth):
    assert store.version == 0
    store.append("exp", 0.5, synth.masks[:20], synth.margins[:20], synth.targets)
    r = store.append("exp", 0.5, synth.masks[20:], synth.margins[20:], synth.targets)
    assert r.version == 2 and store.version == 2
    assert counts(store.root, as_of=1) == (20, 20, 20 * 52)
    assert counts(store.root) == (60, 60, 60 * 52)
    old = Store.open(store.root, as_of=1)
    assert np.array_equal(old.mask_matrix("exp", 0.5), synth.masks[:20])
    store.append("exp", 0.5, synth.masks[:5], synth.margins[:5], synth.targets)   # identical: no commit
    assert store.version == 2
    with pytest.raises(StoreError, match="no version 9"):
        Store.open(store.root, as_of=9)
    hist = log.history(store.root)
    assert [(h["version"], h["operation"], h["models_added"]) for h in hist] == [
        (0, "create", 0), (1, "append", 20), (2, "append", 40)]


def test_overwrite_replaces_in_one_commit(store, synth):
    store.append("exp", 0.5, synth.masks, synth.margins, synth.targets, source="run", source_rows=np.arange(60))
    Y = synth.margins.copy()
    Y[3] += 1
    r = store.append("exp", 0.5, synth.masks, Y, synth.targets, source="run", source_rows=np.arange(60),
                     mode="overwrite")
    assert (r.replaced, r.added, r.version) == (1, 0, 2)
    for v in (1, 2):   # every version holds each model once
        assert counts(store.root, as_of=v) == (60, 60, 60 * 52)
    assert np.array_equal(store.margin_matrix("exp", 0.5), Y)
    assert np.array_equal(Store.open(store.root, as_of=1).margin_matrix("exp", 0.5), synth.margins)
    h = log.history(store.root)[-1]
    assert (h["operation"], h["units_removed"], h["models_removed"]) == ("overwrite", 1, 60)


def test_checkpoint_gives_the_same_snapshot_as_replaying(store, synth):
    for i in range(log.CHECKPOINT_EVERY + 3):
        store.append("exp", 0.5, synth.masks[i % 60:i % 60 + 1], synth.margins[i % 60:i % 60 + 1],
                     synth.targets, source="r", source_rows=[i])
    cp = store.root / log.LOG / f"{log.CHECKPOINT_EVERY:020d}.checkpoint.json"
    assert cp.exists()
    with_cp = log.snapshot(store.root)
    cp.unlink()
    assert log.snapshot(store.root).units == with_cp.units and with_cp.version == log.CHECKPOINT_EVERY + 3


def test_views_read_the_snapshot_not_a_glob(store, synth):
    """A batch directory no commit names (a writer died before committing) is invisible."""
    store.append("exp", 0.5, synth.masks, synth.margins, synth.targets)
    live = next(p for p in (store.root / "batches").iterdir() if p.name != "0-empty")
    shutil.copytree(live, store.root / "batches" / "orphan")
    assert counts(store.root) == (60, 60, 60 * 52)
    assert store.model_ids("exp", 0.5).size == 60
    # no lease token (an older dmstore's unit): kept while young enough that its writer may live
    r = vacuum(store.root, retain_hours=0, force=True)
    assert r["deleted"] == [] and r["kept"] == {"live writer": ["batches/orphan"]}
    old = time.time() - 2 * lease.TTL_S
    os.utime(store.root / "batches" / "orphan" / "models.parquet", (old, old))
    os.utime(store.root / "batches" / "orphan" / "margins.parquet", (old, old))
    r = vacuum(store.root)                       # never committed: no retention needed
    assert r["deleted"] == ["batches/orphan"] and not (store.root / "batches" / "orphan").exists()


def test_vacuum_keeps_what_old_snapshots_read_until_retention(tmp_path):
    s = Synth(m=60, d=40, n_test=12, seed=3)
    st = Store.create(tmp_path / "s", train_size=40, test_size=12)
    for lo in range(0, 60, 10):
        st.append("e", 0.5, s.masks[lo:lo + 10], s.margins[lo:lo + 10], s.targets)
    before = st.version
    con_old = dmstore.connect(st.root)             # a reader holding the pre-compaction snapshot
    compact(st)
    assert counts(st.root) == (60, 60, 60 * 52)
    assert vacuum(st.root)["deleted"] == []   # default retention: a week
    assert con_old.sql("SELECT count(*) FROM margins").fetchall() == [(60 * 52,)]
    assert counts(st.root, as_of=before) == (60, 60, 60 * 52)
    res = CliRunner().invoke(cli, ["vacuum", str(st.root), "--retain", "0"])
    assert res.exit_code == 2 and "--force" in res.output, res.output     # below the safe minimum
    res = CliRunner().invoke(cli, ["vacuum", str(st.root), "--retain", "0", "--force"])
    assert res.exit_code == 0 and "in 6 unit(s)" in res.output, res.output
    assert counts(st.root) == (60, 60, 60 * 52)
    assert np.array_equal(st.mask_matrix("e", 0.5), s.masks)
    with pytest.raises(StoreError, match="deleted .*dmstore vacuum.*newer version"):
        counts(st.root, as_of=before)   # its files are gone: said so, never an empty relation


def test_log_and_as_of_on_the_cli(filled, synth):
    r = CliRunner().invoke(cli, ["log", str(filled.root), "--format", "jsonl"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in r.output.splitlines()]
    assert [x["operation"] for x in rows] == ["create", "append"] and rows[1]["models_added"] == 60
    r = CliRunner().invoke(cli, ["query", str(filled.root), "SELECT count(*) AS n FROM models", "--as-of", "0",
                                 "--format", "csv"])
    assert r.exit_code == 0 and r.output.splitlines() == ["n", "0"], r.output
    r = CliRunner().invoke(cli, ["query", str(filled.root), "SELECT 1", "--as-of", "5"])
    assert r.exit_code == 1 and "no version 5" in r.output


def test_migrate_a_format_1_store(tmp_path):
    """tests/data/store_v1 was written by the format-1 code (tests/data/make_store_v1.py)."""
    root = tmp_path / "v1"
    shutil.copytree(V1, root)
    with pytest.raises(StoreError, match="format version 1 is older.*dmstore migrate"):
        Store.open(root)
    res = CliRunner().invoke(cli, ["migrate", str(root)])
    assert res.exit_code == 0 and "from format version 1 to 2" in res.output, res.output
    st = Store.open(root, "a")
    s = Synth(m=60, d=16, n_test=4, seed=7)
    assert np.array_equal(st.mask_matrix("exp", 0.5), s.masks)
    assert np.array_equal(st.margin_matrix("exp", 0.5), s.margins)
    con = st.connect()
    assert con.sql("SELECT count(*), count(DISTINCT model_id) FROM models").fetchall() == [(60, 60)]
    assert con.sql("SELECT fit_id, estimator, n_targets FROM fit_runs").fetchall() == [(1, "lasso", 4)]
    assert con.sql("SELECT count(*) FROM datamodels WHERE fit_id = 1").fetchall()[0][0] > 0
    assert con.sql("SELECT count(*) FROM eval_predictions").fetchall() == [(40,)]  # 10 eval models x 4
    # the migrated store takes new writes: ids continue after the old ones, fits after fit 1
    r = st.append("exp", 0.5, s.masks[:3], s.margins[:3] + 1, s.targets)
    assert r.model_ids.tolist() == [60, 61, 62]
    from dmstore.fit import fit
    assert fit(st, "exp", 0.5, targets="test", n_lambdas=3).fit_id == 2
    assert "nothing to migrate" in CliRunner().invoke(cli, ["migrate", str(root)]).output


def test_interrupted_migration_reruns(tmp_path):
    root = tmp_path / "v1"
    shutil.copytree(V1, root)
    log.init(root, [{"path": "batches/0-empty", "relations": ["models", "margins"]}], "migrate")  # a partial log
    from dmstore.storage.migrate import migrate
    migrate(root)
    assert Store.open(root).model_ids("exp", 0.5).size == 60


def test_a_damaged_log_is_a_typed_error(filled):
    (filled.root / log.LOG / f"{1:020d}.json").write_text("{not json")
    with pytest.raises(StoreError, match="unreadable log commit"):
        Store.open(filled.root).model_ids("exp", 0.5)
    r = CliRunner().invoke(cli, ["info", str(filled.root)])
    assert r.exit_code == 1 and "unreadable log commit" in r.output


def test_readers_never_write(filled):
    """Opening and querying a store read-only changes no byte of it."""
    before = snapshot(filled.root)
    Store.open(filled.root).mask_matrix("exp", 0.5)
    dmstore.connect(filled.root).sql("SELECT * FROM datamodels").fetchall()
    assert snapshot(filled.root) == before


def test_models_rows_follow_model_id_without_model_id_among_the_columns(store, synth):
    """`models(columns=...)` is ordered by model_id (the matrices' row order) whether or not the
    columns include model_id: batch folders are listed by name (their writing time), which need
    not follow model ids (three `train --shard` processes wrote them out of order and a test
    comparing masks by source row failed). Here each later batch holds smaller ids."""
    for lo in range(50, -10, -10):
        ids = np.arange(lo, lo + 10)
        store.append("exp", 0.5, synth.masks[ids], synth.margins[ids], synth.targets, seeds=ids * 7 + 3,
                     model_ids=ids)
    full = store.models("exp", 0.5, columns=["model_id", "seed"])
    np.testing.assert_array_equal(full["model_id"].to_numpy(), np.arange(60))
    only = store.models("exp", 0.5, columns=["seed"])
    assert only.column_names == ["seed"]
    np.testing.assert_array_equal(only["seed"].to_numpy(), np.arange(60) * 7 + 3)
    np.testing.assert_array_equal(store.mask_matrix("exp", 0.5), synth.masks[:60])   # the same row order
