"""Many writers at once with a reader running: no row lost, no partial file ever visible;
a writer killed with SIGKILL mid-write leaves nothing visible."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import dmstore

from dmstore import Store

from dmstore.testing import snapshot

WRITER = textwrap.dedent("""
    import sys, numpy as np
    from dmstore.testing import alpha_masks
    from dmstore import Store
    k, n_batches, per, d, n = map(int, sys.argv[1:6])
    store = Store.open({root!r}, "a")
    rng = np.random.default_rng(k)
    for b in range(n_batches):
        masks = alpha_masks(rng, per, d, 0.5)
        Y = rng.normal(size=(per, n)).astype(np.float32)
        store.append("w%d" % k, 0.5, masks, Y, np.arange(n), seeds=np.arange(per) + 1000 * b)
""")

READER = textwrap.dedent("""
    import sys, time
    import dmstore
    last = (-1, 0, 0)
    t_end = time.time() + 240
    n_ok = 0
    while time.time() < t_end:
        con = dmstore.connect({root!r})    # a fresh snapshot each poll
        v, m, distinct, y = con.sql("SELECT getvariable('dmstore_version'), (SELECT count(*) FROM models), "
                                    "(SELECT count(DISTINCT model_id) FROM models), "
                                    "(SELECT count(*) FROM margins)").fetchall()[0]
        assert m == distinct, ("duplicate model ids", v, m, distinct)
        assert m % {per} == 0 and y == m * {n}, (v, m, y)
        assert v >= last[0] and m >= last[1] and y >= last[2], ((v, m, y), last)
        last = (v, m, y)
        n_ok += 1
        if m == {total} and open({done!r}).read() == "done":
            break
    print("reads", n_ok, last[1], last[2])
""")

COMPACTOR = textwrap.dedent("""
    import sys, time
    from dmstore import Store
    from dmstore.store.compact import compact
    st = Store.open({root!r}, "a")
    merged = 0
    for i in range(4):
        time.sleep(0.3)
        merged += compact(st, max_cells=4 * {per} * {n})["merged"]
    print("merged", merged)
""")


def test_eight_writers_four_compactions_and_a_reader(tmp_path):
    """The reader polls fresh snapshots while 8 writers append and 4 compactions run: no error,
    counts never decrease, and no model id is ever seen twice."""
    d, n, per, n_batches, workers = 64, 32, 10, 4, 8
    store = Store.create(tmp_path / "s", train_size=d, test_size=n - d if n > d else 0)
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(tests), env_path()]))
    total = workers * n_batches * per
    done = tmp_path / "done"
    done.write_text("")
    reader = subprocess.Popen([sys.executable, "-c", READER.format(root=str(store.root), per=per, n=n, total=total,
                                                                   done=str(done))],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER.format(tests=tests, root=str(store.root)),
                               str(k), str(n_batches), str(per), str(d), str(n)],
                              stderr=subprocess.PIPE, text=True, env=env) for k in range(workers)]
    compactor = subprocess.Popen([sys.executable, "-c", COMPACTOR.format(root=str(store.root), per=per, n=n)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for p in procs + [compactor]:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    done.write_text("done")
    out, err = reader.communicate(timeout=300)
    assert reader.returncode == 0, err
    assert out.split()[2:] == [str(total), str(total * n)]
    assert int(out.split()[1]) > 1   # it really polled while they ran
    con = store.connect()
    m, distinct, y = con.sql("SELECT count(*), count(DISTINCT model_id), (SELECT count(*) FROM margins) FROM models").fetchall()[0]
    assert (m, distinct, y) == (total, total, total * n)
    for k in range(workers):  # every worker's data arrived intact
        rng = np.random.default_rng(k)
        from dmstore.testing import alpha_masks
        masks = np.concatenate([(alpha_masks(rng, per, d, 0.5), rng.normal(size=(per, n)))[0] for _ in range(n_batches)])
        assert np.array_equal(store.mask_matrix(f"w{k}", 0.5), masks)
    ops = [h["operation"] for h in dmstore.storage.log.history(store.root)]
    assert ops.count("append") == workers * n_batches


def env_path():
    return os.environ.get("PYTHONPATH", "")


KILLED = textwrap.dedent("""
    import numpy as np, sys
    from dmstore import Store
    store = Store.open({root!r}, "a")
    rng = np.random.default_rng(0)
    m, d, n = 6000, 64, 2000
    masks = np.zeros((m, d), bool); masks[:, :32] = True
    Y = rng.normal(size=(m, n)).astype(np.float32)
    print("ready", flush=True)
    store.append("big", 0.5, masks, Y, np.arange(n))
""")


def test_sigkill_mid_write_leaves_nothing_visible(tmp_path):
    store = Store.create(tmp_path / "s", train_size=64, test_size=2000 - 64)
    store.append("small", 0.5, np.tile(np.arange(64) < 32, (3, 1)), np.zeros((3, 5)), np.arange(5))
    before = snapshot(store.root)
    con = store.connect()
    counts = con.sql("SELECT (SELECT count(*) FROM models), (SELECT count(*) FROM margins)").fetchall()
    p = subprocess.Popen([sys.executable, "-c", KILLED.format(root=str(store.root))],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    tmp = store.root / ".tmp"
    deadline = time.time() + 120
    while time.time() < deadline:  # kill as soon as a batch file is being written
        if any(tmp.glob("*/margins.parquet")):
            break
        time.sleep(0.0005)
    else:
        pytest.fail("writer never started writing")
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert snapshot(store.root) == before
    assert con.sql("SELECT (SELECT count(*) FROM models), (SELECT count(*) FROM margins)").fetchall() == counts
    assert any(tmp.iterdir())  # the dead writer's private temp directory is still there …
    Store.open(store.root, "a")  # … until the next writer opens the store
    assert not any(tmp.iterdir())
    assert snapshot(store.root) == before


SAME = textwrap.dedent("""
    import sys
    from dmstore import Store
    from dmstore.ingest import ingest_release
    r = ingest_release(Store.open({root!r}, "a"), {rel!r}, 0.5, "same")
    print(r.added, r.skipped)
""")


def test_writers_racing_on_the_same_records_store_them_once(tmp_path):
    """Four processes ingest one release at once: each stages its files outside the lock; the
    ones that find the records committed meanwhile redo their plan, so every model lands once."""
    from dmstore.testing import Synth, write_release
    s = Synth(m=400, d=64, n_test=200, seed=9)
    rel = write_release(tmp_path / "rel", s.masks, test=s.margins[:, 64:])
    store = Store.create(tmp_path / "s", train_size=64, test_size=200)
    procs = [subprocess.Popen([sys.executable, "-c", SAME.format(root=str(store.root), rel=str(rel))],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(tuple(map(int, out.split())))
    assert sum(a for a, _ in outs) == 400 and all(a + sk == 400 for a, sk in outs)
    con = store.connect()
    assert con.sql("SELECT count(*), count(DISTINCT model_id), count(DISTINCT source_row) FROM models").fetchall() == [(400, 400, 400)]
    assert np.array_equal(store.mask_matrix("same", 0.5), s.masks)


RACE = textwrap.dedent("""
    import sys
    import numpy as np
    from dmstore.testing import alpha_masks
    from dmstore import ConflictError, Store
    from dmstore.storage.paths import NEXT_ID
    who, rounds, start = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    store = Store.open({root!r}, "a")
    rng = np.random.default_rng(0 if who == "assigned" else 1)
    outcomes = []
    for r in range(rounds):
        masks = alpha_masks(rng, 8, 32, 0.5)
        Y = rng.normal(size=(8, 4)).astype(np.float32)
        while open(start).read().count("go") <= r:   # both processes start each round together
            pass
        if who == "assigned":
            store.append("assigned", 0.5, masks, Y, np.arange(4))
            outcomes.append("ok")
        else:   # explicit ids: the very ids the assigned writer is reserving
            nxt = (store.root / NEXT_ID)
            base = int(nxt.read_text()) if nxt.exists() else 0
            try:
                store.append("explicit", 0.5, masks, Y, np.arange(4), model_ids=np.arange(base, base + 8))
                outcomes.append("ok")
            except ConflictError:
                outcomes.append("conflict")
        open(start + "." + who, "a").write("x")
    print(" ".join(outcomes))
""")


def test_explicit_and_assigned_id_writers_racing_keep_ids_unique(tmp_path):
    """20 rounds: a writer whose ids the store assigns races one that brings explicit ids equal
    to the ones being reserved. Ids stay unique; the assigned writer always lands (it renumbers
    when it loses), the explicit one lands or is refused with a ConflictError."""
    rounds = 20
    store = Store.create(tmp_path / "s", train_size=32, test_size=4)
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(tests), env_path()]))
    start = tmp_path / "start"
    start.write_text("")
    procs = {who: subprocess.Popen([sys.executable, "-c", RACE.format(tests=tests, root=str(store.root)),
                                    who, str(rounds), str(start)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for who in ("assigned", "explicit")}
    time.sleep(1.5)   # both imported and waiting
    for r in range(rounds):
        with open(start, "a") as fh:
            fh.write("go")
        deadline = time.time() + 60
        while time.time() < deadline and not all(
                (tmp_path / f"start.{w}").exists() and len((tmp_path / f"start.{w}").read_text()) > r
                for w in procs):
            assert all(p.poll() is None or p.returncode == 0 for p in procs.values()), \
                [p.stderr.read() for p in procs.values() if p.poll()]
            time.sleep(0.005)
    outs = {}
    for who, p in procs.items():
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs[who] = out.split()
    assert outs["assigned"] == ["ok"] * rounds
    assert set(outs["explicit"]) <= {"ok", "conflict"}
    con = store.connect()
    m, distinct = con.sql("SELECT count(*), count(DISTINCT model_id) FROM models").fetchall()[0]
    assert m == distinct == 8 * (rounds + outs["explicit"].count("ok"))
    assert con.sql("SELECT count(*) FROM margins").fetchall()[0][0] == 4 * m
    print("explicit outcomes:", {k: outs["explicit"].count(k) for k in ("ok", "conflict")})
