"""Damaged metadata never ends in a traceback or a wrong answer: each kind of damage to `_log/`,
the manifest, a run record, a unit or the examples, against each of 8 commands. Every command
exits 0 with the undamaged answer, or 1 with `Error:` naming what is damaged."""
import json
import os
import shutil
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from dmstore import Store
from dmstore.cli import cli
from dmstore.fit import fit
from dmstore.storage import log
from dmstore.testing import Synth, write_release

CP_EVERY = 4


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A store with 8 commits (checkpoints at 4 and 8), a fit and half of a sharded run, and a
    small release to ingest."""
    base = tmp_path_factory.mktemp("damage")
    s = Synth(m=60, d=30, n_test=10, seed=9)
    old = log.CHECKPOINT_EVERY
    log.CHECKPOINT_EVERY = CP_EVERY
    try:
        st = Store.create(base / "s", train_size=30, test_size=10)
        roles = np.array(["fit"] * 40 + ["val"] * 10 + ["eval"] * 10, dtype=object)
        for lo in range(0, 60, 10):
            st.append("exp", 0.5, s.masks[lo:lo + 10], s.margins[lo:lo + 10], s.targets, roles=roles[lo:lo + 10])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit(st, "exp", 0.5, estimator="diff_means", progress=False)
            fit(st, "exp", 0.5, n_lambdas=2, progress=False, shard=(0, 2), run="r")
    finally:
        log.CHECKPOINT_EVERY = old
    assert st.version == 8 and (st.root / "_log" / f"{8:020d}.checkpoint.json").exists()
    rel = write_release(base / "rel", s.masks[:5], test=s.margins[:5, 30:])
    return st.root, rel


def _commit(v):
    return f"_log/{v:020d}.json"


def _cp(v):
    return f"_log/{v:020d}.checkpoint.json"


def _write(text):
    return lambda root, rel: (root / rel).write_text(text)


def _truncate(n):
    return lambda root, rel: (root / rel).write_bytes((root / rel).read_bytes()[:n])


def _edit(fn):
    def apply(root, rel):
        c = json.loads((root / rel).read_text())
        (root / rel).write_text(json.dumps(fn(c)))
    return apply


def _batch(root):
    return next(u for u in sorted((root / "batches").iterdir()) if u.name != "0-empty")


def _live_file(root, rel):
    (_batch(root) / "margins.parquet").unlink()


def _rm(root, rel):
    p = root / rel
    shutil.rmtree(p) if p.is_dir() else p.unlink()


def _log_is_file(root, rel):
    shutil.rmtree(root / "_log")
    (root / "_log").write_text("not a directory")


def _log_empty(root, rel):
    for f in (root / "_log").iterdir():
        f.unlink()


def _lease_garbage(root, rel):
    (root / "_leases").mkdir(exist_ok=True)
    (root / "_leases" / "0123456789abcdef.json").write_bytes(b"\x00\xff garbage")


# kind -> (damage, file it damages, what a failing command must name; None: commands must succeed)
DAMAGE = {
    "checkpoint truncated": (_truncate(100), _cp(8), None),
    "checkpoint {}": (_write("{}"), _cp(8), None),
    "checkpoint list": (_write("[1, 2]"), _cp(8), None),
    "checkpoint of another version": (_edit(lambda c: dict(c, version=7)), _cp(8), None),
    "both checkpoints torn": (lambda root, rel: [_truncate(50)(root, _cp(v)) for v in (4, 8)], _cp(8), None),
    "latest commit truncated (its checkpoint stands in)": (_truncate(100), _commit(8), None),
    "latest commit and its checkpoint truncated": (lambda root, rel: [_truncate(100)(root, p) for p in (_commit(8), _cp(8))],
                                                   _commit(8), f"{8:020d}.json"),
    "commit {}": (_write("{}"), _commit(5), None),
    "commit list": (_write("[1, 2]"), _commit(5), None),
    "commit of another version": (_edit(lambda c: dict(c, version=4)), _commit(5), None),
    "commit without add": (_edit(lambda c: {k: v for k, v in c.items() if k != "add"}), _commit(5), None),
    "commit with an entry without path": (_edit(lambda c: dict(c, add=[{"relations": ["models"]}])), _commit(5), None),
    "commit naming a path outside the store": (_edit(lambda c: dict(c, add=[dict(c["add"][0], path="../../etc")])),
                                               _commit(5), None),
    "commit removing a unit never live": (_edit(lambda c: dict(c, remove=["batches/nope"])), _commit(5), None),
    "commit binary garbage": (lambda root, rel: (root / rel).write_bytes(os.urandom(64)), _commit(5), None),
    "commit missing (gap)": (_rm, _commit(6), None),
    "_log missing": (_rm, "_log", "_log"),
    "_log empty": (_log_empty, "_log", "commit log is empty"),
    "_log is a file": (_log_is_file, "_log", "_log"),
    "manifest truncated": (_truncate(20), "dmstore.json", "dmstore.json"),
    "manifest list": (_write("[]"), "dmstore.json", "dmstore.json"),
    "manifest without train_size": (_edit(lambda c: {k: v for k, v in c.items() if k != "train_size"}),
                                    "dmstore.json", "dmstore.json"),
    "manifest disagrees with examples": (_edit(lambda c: dict(c, train_size=31)), "dmstore.json", "examples.parquet"),
    "run record truncated": (_truncate(10), "_runs/r.json", None),
    "run record list": (_write("[]"), "_runs/r.json", None),
    "live unit file deleted": (_live_file, None, None),
    "examples missing": (_rm, "examples.parquet", "examples.parquet"),
    "lease garbage": (_lease_garbage, None, None),
}


def _commands(root, rel, out):
    return {
        "info": ["info", str(root)],
        "query": ["query", str(root), "SELECT count(*) AS n, sum(model_id) AS s FROM models", "--csv"],
        "log": ["log", str(root), "--csv"],
        "ingest": ["ingest", "release", str(root), str(rel), "--alpha", "0.5", "--experiment", "new"],
        "compact": ["compact", str(root)],
        "vacuum": ["vacuum", str(root)],
        "fit": ["fit", str(root), "--experiment", "exp", "--alpha", "0.5", "--lambdas", "2", "--shard", "1/2",
                "--run", "r"],
        "export": ["export", str(root), "models", "-o", str(out)],
    }


def _run(args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CliRunner().invoke(cli, args)


@pytest.fixture(scope="module")
def clean_answers(template, tmp_path_factory):
    root, rel = template
    work = tmp_path_factory.mktemp("clean") / "s"
    shutil.copytree(root, work)
    return {c: _run(a).stdout for c, a in _commands(work, rel, work.parent / "m.parquet").items() if c == "query"}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_every_command_on_damaged_metadata(template, clean_answers, tmp_path, kind):
    damage, target, names = DAMAGE[kind]
    root, rel = template
    outcomes = {}
    for cmd, args in _commands(tmp_path / "s", rel, tmp_path / "m.parquet").items():
        work = tmp_path / "s"
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(root, work)
        damage(work, target)
        r = _run(args)
        assert r.exception is None or isinstance(r.exception, SystemExit), (kind, cmd, r.output, repr(r.exception))
        assert r.exit_code in (0, 1), (kind, cmd, r.output)
        if r.exit_code == 1:
            assert r.output.startswith("Error: "), (kind, cmd, r.output)
            if names is not None:
                assert names in r.output, (kind, cmd, r.output)
            elif target is not None and target.startswith(("_log/", "_runs/")):
                assert target.rsplit("/", 1)[1] in r.output, (kind, cmd, r.output)   # names the file
        elif cmd == "query":
            assert r.stdout == clean_answers["query"], (kind, "a wrong answer", r.stdout)
        outcomes[cmd] = r.exit_code
    if names is not None:   # the store cannot be read: every command says so
        assert set(outcomes.values()) == {1}, (kind, outcomes)
    if kind.startswith(("checkpoint", "both checkpoints")):   # an optimisation only: everything works
        assert set(outcomes.values()) == {0}, (kind, outcomes)
