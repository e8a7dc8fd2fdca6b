"""Attacks on the guarantees of issue 16: vacuum racing a running ingest, writers on another
host (a fake lease and a real PID namespace), export over a folder holding the store, the
sharded-run completion race, and a run pinned to a vacuumed version."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

import dmstore
from dmstore import Store, StoreError
from dmstore.fit import runs
from dmstore.storage import lease, log
from dmstore.cli import cli
from dmstore.store.compact import compact
from dmstore.fit import fit
from dmstore.storage.vacuum import vacuum

from dmstore.testing import Synth, snapshot

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# An ingest whose source pauses after its first batches until `go` exists: its first units are
# published in batches/ but not committed while the test runs vacuum against them.
PAUSED_INGEST = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from dmstore.testing import alpha_masks
    from dmstore import Store
    from dmstore.store.batch import ModelBatch
    st = Store.open({root!r}, "a")
    rng = np.random.default_rng(0)
    def batches():
        for b in range(6):
            if b == 3:
                open({ready!r}, "w").write("ready")
                while not os.path.exists({go!r}):
                    time.sleep(0.05)
            masks = alpha_masks(rng, 20, st.d, 0.5)
            yield ModelBatch.from_arrays(experiment="e", alpha=0.5, masks=masks,
                margins=rng.normal(size=(20, st.n_examples)).astype(np.float32),
                target_ids=np.arange(st.n_examples), d=st.d, n_examples=st.n_examples, where="t",
                source="paused", source_rows=np.arange(b * 20, b * 20 + 20))
    print(st.ingest(batches).summary())
""")


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))


def _start_paused(root, tmp_path, prefix=()):
    ready, go = tmp_path / "ready", tmp_path / "go"
    code = PAUSED_INGEST.format(root=str(root), ready=str(ready), go=str(go))
    p = subprocess.Popen([*prefix, sys.executable, "-c", code], env=_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    t_end = time.time() + 120
    while not ready.exists():
        assert p.poll() is None, p.communicate()
        assert time.time() < t_end, "the paused ingest never got ready"
        time.sleep(0.05)
    time.sleep(0.3)   # its first three units are written and published
    return p, go


def _uncommitted(root):
    live = log.snapshot(root).units
    return sorted(f"batches/{u.name}" for u in (root / "batches").iterdir() if f"batches/{u.name}" not in live)


def _finish(p, go):
    go.write_text("go")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    return out


def test_vacuum_never_deletes_a_running_ingests_units(tmp_path):
    """vacuum --retain 0 --force (twice, and cleanup at open) while an ingest has published but
    not committed three units: they are kept, the ingest commits all 120 models, and every
    command reads the store afterwards (before the fix: the ingest committed deleted units)."""
    st = Store.create(tmp_path / "s", train_size=30, test_size=10)
    p, go = _start_paused(st.root, tmp_path)
    staged = _uncommitted(st.root)
    assert len(staged) >= 1
    for _ in range(2):
        r = CliRunner().invoke(cli, ["vacuum", str(st.root), "--retain", "0", "--force"])
        assert r.exit_code == 0 and "a running writer may still commit them" in r.output, r.output
        Store.open(st.root, "a")                       # stale-temp cleanup of a second writer
    assert set(staged) <= set(_uncommitted(st.root))
    assert "added 120" in _finish(p, go)
    con = dmstore.connect(st.root)
    assert con.sql("SELECT count(*), count(DISTINCT model_id) FROM models").fetchall() == [(120, 120)]
    assert con.sql("SELECT count(*) FROM margins").fetchall() == [(120 * 40,)]
    assert CliRunner().invoke(cli, ["info", str(st.root)]).exit_code == 0
    # the writer is gone: its lease went with it, and vacuum now finds nothing to keep
    assert not list((st.root / lease.LEASES).glob("*.json"))
    assert vacuum(st.root, 0, force=True)["deleted"] == []


def test_a_unit_deleted_before_its_commit_is_never_committed(filled, synth):
    """The writer re-checks at commit that every unit it names exists."""
    real = log.commit

    def delete_then_commit(base, op, add, remove=(), **kw):
        shutil.rmtree(base.root / add[0]["path"])
        return real(base, op, add, remove, **kw)
    before = snapshot(filled.root)
    log.commit = delete_then_commit
    try:
        with pytest.raises(StoreError, match="deleted before its commit"):
            filled.append("exp2", 0.5, synth.masks[:5], synth.margins[:5], synth.targets)
    finally:
        log.commit = real
    assert snapshot(filled.root) == before
    assert dmstore.connect(filled.root).sql("SELECT count(*) FROM models").fetchall() == [(60,)]


def _foreign_lease(root, token, age_s=0.0):
    """A lease as a writer on another machine writes it: another host id, a PID that is not
    alive here, heartbeat `age_s` seconds ago."""
    d = root / lease.LEASES
    d.mkdir(exist_ok=True)
    p = d / f"{token}.json"
    p.write_text(json.dumps({"token": token, "host": "another-machine", "hostname": "node7", "pid": 2 ** 22 + 7,
                             "started": time.time() - age_s, "purpose": "ingest"}))
    t = time.time() - age_s
    os.utime(p, (t, t))
    return p


def test_writers_on_another_host_are_judged_by_their_heartbeat(filled):
    """A unit and a temp entry of a writer on another machine (its PID means nothing here) are
    kept while its lease is fresh, by vacuum and by a writer opening the store; deleted once the
    heartbeat is older than the lease TTL (before the fix: deleted at once, by a local PID check)."""
    token = "0123456789abcdef"
    lp = _foreign_lease(filled.root, token)
    live = next(p for p in (filled.root / "batches").iterdir() if p.name != "0-empty")
    unit = filled.root / "batches" / f"00000000000000000001-{2 ** 22 + 7}-1~{token}"
    shutil.copytree(live, unit)
    tmp = filled.root / ".tmp" / f"00000000000000000002-{2 ** 22 + 7}-2~{token}"
    tmp.mkdir()
    (tmp / "margins.parquet").write_bytes(b"half written")
    for _ in range(2):
        Store.open(filled.root, "a")
        r = vacuum(filled.root, 0, force=True)
        assert r["deleted"] == [] and r["kept"] == {"live writer": [f"batches/{unit.name}"]}
        assert unit.exists() and tmp.exists()
    assert lease.state(filled.root, token)[0]
    old = time.time() - lease.TTL_S - 5               # the other machine stopped renewing it
    os.utime(lp, (old, old))
    alive, why = lease.state(filled.root, token)
    assert not alive and "last renewed its lease" in why
    r = vacuum(filled.root)                            # default retention: orphans need none
    assert r["deleted"] == [f"batches/{unit.name}"] and not unit.exists() and not tmp.exists()
    assert r["temps"] >= 2 and not lp.exists()         # the temp entry and the dead lease
    assert dmstore.connect(filled.root).sql("SELECT count(*) FROM models").fetchall() == [(60,)]


def _unshare_works():
    try:
        return subprocess.run(["unshare", "-p", "-f", "--mount-proc", "true"], capture_output=True,
                              timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not _unshare_works(), reason="needs unshare -p (a PID namespace: root or user namespaces)")
def test_a_writer_in_another_pid_namespace_survives_vacuum_and_cleanup(tmp_path):
    """The README's shared-file-system setup on one kernel: a writer in its own PID namespace
    (its PIDs mean other processes here) is paused mid-ingest while this namespace opens the
    store for writing and vacuums with --retain 0 --force; its ingest then completes."""
    st = Store.create(tmp_path / "s", train_size=30, test_size=10)
    p, go = _start_paused(st.root, tmp_path, prefix=("unshare", "-p", "-f", "--mount-proc"))
    staged = _uncommitted(st.root)
    rec = json.loads(next((st.root / lease.LEASES).glob("*.json")).read_text())
    assert rec["host"] != lease.host_id()              # another PID namespace: another host id
    for _ in range(3):
        Store.open(st.root, "a")
        assert vacuum(st.root, 0, force=True)["deleted"] == []
    assert set(staged) <= set(_uncommitted(st.root))
    assert "added 120" in _finish(p, go)
    assert dmstore.connect(st.root).sql("SELECT count(DISTINCT model_id) FROM models").fetchall() == [(120,)]


def test_vacuum_below_the_safe_minimum_needs_force(filled):
    with pytest.raises(dmstore.InputError, match="safe minimum.*force=True"):
        vacuum(filled.root, 0.5)
    r = CliRunner().invoke(cli, ["vacuum", str(filled.root), "--retain", "0.5"])
    assert r.exit_code == 2 and "--force" in r.output and "safe minimum" in r.output


@pytest.mark.parametrize("where", ["parent", "grandparent", "store", "inside"])
def test_export_overwrite_never_deletes_the_store(tmp_path, filled, monkeypatch, where):
    """`cd proj && dmstore export runs models --partition-by experiment -o . --overwrite`
    emptied proj/, store included (before the fix)."""
    proj = tmp_path / "proj"
    proj.mkdir()
    root = proj / "runs"
    shutil.move(str(filled.root), root)
    (proj / "notes.txt").write_text("keep me")
    monkeypatch.chdir(proj)
    out = {"parent": ".", "grandparent": "..", "store": "runs", "inside": "runs/batches"}[where]
    before = snapshot(root)
    r = CliRunner().invoke(cli, ["export", "runs", "models", "--partition-by", "experiment", "-o", out,
                                 "--overwrite"])
    assert r.exit_code == 1, r.output
    assert ("contains the store" if where in ("parent", "grandparent") else "inside the store") in r.output
    assert snapshot(root) == before and (proj / "notes.txt").read_text() == "keep me"


def _run_spec():
    """(experiment, alpha, estimator, the fit_runs columns) of a run's row."""
    return ("exp", 0.5, "lasso", {"n_fit": 1, "n_val": 1, "val_source": "role", "n_targets": 0, "n_lambdas": 1,
                                  "lambda_min_ratio": 0.1, "tol": 1e-6, "max_iter": 1, "dtype": "float32",
                                  "device": "cpu", "wall_time_s": 0.0, "max_rel_gap": 0.0, "n_not_converged": 0,
                                  "params": {}})


def test_exactly_one_shard_completes_a_run_when_shards_race(filled, monkeypatch):
    """Shard 0 decides 'not complete' and is paused (injected) until shard 1 has decided and
    committed; then shard 0 commits. Exactly one fit_runs row results, from shard 0's second
    decision (before the fix: shard 0 committed on its stale decision, the run got no fit_runs
    row, and every rerun skipped as 'already committed')."""
    rec = runs.open_run(filled, "race", {"x": 1}, 2)
    real, local = runs.committed_shards, threading.local()
    one_done = threading.Event()
    decisions = []

    def paused(snap, name):
        out = real(snap, name)
        decisions.append((local.k, sorted(out)))
        if local.k == 0 and not one_done.is_set():
            assert one_done.wait(60)         # the pause: shard 1 commits meanwhile
        return out
    monkeypatch.setattr(runs, "committed_shards", paused)
    results = {}

    def shard(k):
        local.k = k
        weights = pa.table({"fit_id": [rec["fit_id"]], "target_id": [40 + k], "lam": [0.1], "train_id": [k],
                            "weight": [1.0]})
        stats = {"n_targets": 1, "wall_time_s": 1.0, "n_not_converged": 0, "max_rel_gap": 0.0, "device": "cpu"}
        try:
            # a stream, as a fit writes it: shard 0's second attempt must write its rows again
            stream = lambda: (t for t in [weights])   # noqa: E731
            results[k] = runs.commit_shard(filled, rec, (k, 2), {"weights": stream}, _run_spec(), stats)
        finally:
            if k == 1:
                one_done.set()
    t0 = threading.Thread(target=shard, args=(0,))
    t0.start()
    deadline = time.time() + 60
    while not decisions and t0.is_alive() and time.time() < deadline:
        time.sleep(0.01)
    assert decisions, "shard 0 never decided (it failed before its decision)"
    shard(1)
    t0.join(120)
    assert results[1][1] is False and results[0][1] is True, (results, decisions)
    assert decisions[0] == (0, []) and (0, [1]) in decisions        # shard 0 decided again
    snap = log.snapshot(filled.root)
    units = [e for e in snap.units.values() if e.get("run") == "race"]
    assert len(units) == 2 and sum("fit_runs" in e["relations"] for e in units) == 1
    con = dmstore.connect(filled.root)
    assert con.sql("SELECT fit_id, n_targets FROM fit_runs").fetchall() == [(rec["fit_id"], 2)]
    # no shard's weights lost to the retry (a consumed stream once wrote shard 0's unit empty)
    assert con.sql("SELECT target_id, train_id FROM weights ORDER BY 1").fetchall() == [(40, 0), (41, 1)]
    one = pa.table({"fit_id": [rec["fit_id"]], "target_id": [42], "lam": [0.1], "train_id": [2], "weight": [1.0]})
    stats = {"n_targets": 1, "wall_time_s": 1.0, "n_not_converged": 0, "max_rel_gap": 0.0, "device": "cpu"}
    with pytest.raises(TypeError, match="one-shot"):
        runs.commit_shard(filled, runs.open_run(filled, "once", {"x": 1}, 1), (0, 1), {"weights": iter([one])},
                          _run_spec(), stats)


@pytest.mark.filterwarnings("ignore:.*iteration cap")
def test_a_run_pinned_to_a_vacuumed_version(tmp_path):
    """Vacuum keeps the version an unfinished sharded run reads; when its files are gone anyway
    (deleted by hand) the next shard says which run, which version and what to do."""
    s = Synth(m=80, d=30, n_test=10, seed=5)
    st = Store.create(tmp_path / "s", train_size=30, test_size=10)
    roles = np.array(["fit"] * 60 + ["val"] * 10 + ["eval"] * 10, dtype=object)
    for lo in range(0, 80, 20):
        st.append("exp", 0.5, s.masks[lo:lo + 20], s.margins[lo:lo + 20], s.targets, roles=roles[lo:lo + 20])
    args = dict(targets="test", n_lambdas=3, progress=False, run="r", max_iter=200)
    fit(st, "exp", 0.5, shard=(0, 2), **args)
    pinned = json.loads((st.root / "_runs" / "r.json").read_text())["version"]
    compact(st)                                          # retires every unit the run reads
    r = vacuum(st.root, 0, force=True)
    assert r["deleted"] == [] and len(r["kept"]["pinned run"]) == 4
    victim = next(iter(r["kept"]["pinned run"]))
    shutil.rmtree(st.root / victim)                      # by hand
    with pytest.raises(StoreError, match=rf"run 'r' reads store version {pinned}.*deleted.*new run name"):
        fit(st, "exp", 0.5, shard=(1, 2), **args)
    with pytest.raises(StoreError, match=rf"version {pinned} names .* deleted"):
        dmstore.connect(st.root, as_of=pinned)
    r2 = fit(st, "exp", 0.5, shard=(0, 1), **dict(args, run="r-again"))   # a new run works
    assert r2.n_targets == 10
    r = CliRunner().invoke(cli, ["vacuum", str(st.root), "--retain", "0", "--force"])
    assert f"run(s) r (version {pinned}) read them" in r.output and "_runs/NAME.json" in r.output, r.output
    (st.root / "_runs" / "r.json").unlink()             # give the run up: nothing is pinned now
    assert len(vacuum(st.root, 0, force=True)["deleted"]) == 3
