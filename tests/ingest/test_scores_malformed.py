"""Malformed score files (issue 25): each is refused by `dmstore ingest scores` with exit 1 and an
`Error:` naming the file (and row) and what to do, and the store directory is exactly as it
was — temp files, reserved fit ids and leases included (`testing.tree`). A refused ingest burns
no fit id: the next good ingest is fit 1."""
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner

from dmstore import Store
from dmstore.cli import cli
from dmstore.testing import alpha_masks, tree

D, N = 24, 6
TARGETS = f"{D}-{D + N - 1}"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A store of D train and N + 1 test examples; the last test example has no margins."""
    tmp = tmp_path_factory.mktemp("malformed")
    rng = np.random.default_rng(3)
    X = alpha_masks(rng, 160, D, 0.5)
    Y = (X @ rng.normal(size=(D, D + N)) + rng.normal(scale=0.3, size=(160, D + N))).astype(np.float32)
    roles = np.array(["fit"] * 100 + ["val"] * 20 + ["eval"] * 40, dtype=object)
    st = Store.create(tmp / "s", train_size=D, test_size=N + 1)
    st.append("e", 0.5, X, Y, np.arange(D + N), roles=roles)
    return st.root


def _npy(path, arr):
    np.save(path, arr)
    return path


def _pt(path, obj, **kw):
    torch.save(obj, path, **kw)
    return path


def _triples(path, tid, iid, score, types=(pa.int32(), pa.int32(), pa.float32())):
    pq.write_table(pa.table({"target_id": pa.array(tid, types[0]), "train_id": pa.array(iid, types[1]),
                             "score": pa.array(score, types[2])}), path)
    return path


def _trak_dir(path):
    (path / "scores").mkdir(parents=True)
    (path / "experiments.json").write_text(json.dumps(["dmstore"]))
    np.save(path / "scores" / "dmstore.mmap", np.zeros((D, N), np.float32))
    return path


def _S(dtype=np.float32):
    return np.random.default_rng(0).normal(size=(N, D)).astype(dtype)


def _with(arr, i, j, v):
    arr = arr.copy()
    arr[i, j] = v
    return arr


# (id, make(tmp) -> path, extra CLI args, regex the message must match)
CASES = [
    ("nan", lambda t: _npy(t / "nan.npy", _with(_S(), 2, 5, np.nan)), [],
     r"nan\.npy: row 2, column 5 \(target 26, train id 5\): score nan is not finite"),
    ("inf", lambda t: _npy(t / "inf.npy", _with(_S(), 0, 1, np.inf)), [], r"inf\.npy: row 0, column 1 .*score inf"),
    ("float16 overflow", lambda t: _npy(t / "f16.npy", _with(_S(np.float16), 1, 1, np.float16(7e4))), [],
     r"f16\.npy: row 1, column 1 .*score inf"),
    ("beyond float32", lambda t: _npy(t / "f64.npy", _with(_S(np.float64), 3, 0, 1e300)), [],
     r"f64\.npy: row 3, column 0 .*not finite"),
    ("structured dtype", lambda t: _npy(t / "rec.npy", np.zeros((N, D), dtype=[("a", "<f4"), ("b", "<f4")])), [],
     r"rec\.npy: scores have a structured \(record\) dtype; expected a plain floating-point matrix"),
    ("integers", lambda t: _npy(t / "int.npy", np.ones((N, D), np.int32)), [], r"int\.npy: scores have dtype int32"),
    ("text as npy", lambda t: (t / "t.npy").write_text("target,train,score\n1,2,3\n") and t / "t.npy", [],
     r"t\.npy: not a \.npy file \(it is text without the \.npy header\); save the array with np\.save"),
    ("empty npy", lambda t: (t / "e.npy").write_bytes(b"") or t / "e.npy", [], r"e\.npy: not a \.npy file \(it is empty"),
    ("npz as npy", lambda t: (np.savez(t / "z.npz", a=_S()), os.replace(t / "z.npz", t / "z.npy"), t / "z.npy")[2], [],
     r"z\.npy: an \.npz archive"),
    ("device as npy", lambda t: "/dev/zero", [], r"/dev/zero: not a regular file"),
    ("sparse pt", lambda t: _pt(t / "sp.pt", torch.from_numpy(_S()).to_sparse()), [],
     r"sp\.pt: a sparse_coo \(sparse\) tensor; save tensor\.to_dense\(\)"),
    ("legacy pt", lambda t: _pt(t / "old.pt", torch.from_numpy(_S()), _use_new_zipfile_serialization=False), [],
     r"old\.pt: not in the zip format torch\.save writes"),
    ("dict pt", lambda t: _pt(t / "d.pt", {"scores": torch.from_numpy(_S())}), [], r"d\.pt: holds a dict, not a tensor"),
    ("zero triples", lambda t: _triples(t / "z.parquet", [], [], []), [],
     r"z\.parquet: no rows; give at least one triple"),
    ("uint64 train id", lambda t: _triples(t / "u.parquet", [D, D], [1, 2**64 - 1], [0.5, 0.1],
                                           (pa.int32(), pa.uint64(), pa.float32())), [],
     r"u\.parquet: data row 2: train_id 18446744073709551615 is not a train example"),
    ("target without margins", lambda t: _triples(t / "nm.parquet", [D, D + N, D + N], [1, 2, 3], [0.5, 0.2, 0.1]), [],
     rf"nm\.parquet: data row 2: target {D + N} has no recorded margins"),
    ("trak experiments list", lambda t: _trak_dir(t / "trak"), [],
     r"experiments\.json: holds a JSON list, not the object of experiments TRAK writes"),
    ("trak experiment on a file", lambda t: _npy(t / "ok.npy", _S()), ["--trak-experiment", "x"],
     r"ok\.npy: --trak-experiment names an experiment of a TRAK save directory; this is a file: drop --trak-experiment\n"),
    ("built-in name in capitals", lambda t: _npy(t / "ok2.npy", _S()), ["--name", "LASSO"],
     r"name 'LASSO' is dmstore's own estimator 'lasso'"),
]


@pytest.mark.parametrize("make, extra, match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_scores_refused_and_the_store_as_it_was(root, tmp_path, make, extra, match):
    import re
    path = make(tmp_path)
    before = tree(root)
    args = ["ingest", "scores", str(root), str(path), "--experiment", "e", "--alpha", "0.5"]
    if "--name" not in extra:
        args += ["--name", "m"]
    if "triples" not in str(path) and not str(path).endswith(".parquet"):
        args += ["--targets", TARGETS]
    r = CliRunner().invoke(cli, args + extra)
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: ") and re.search(match, r.output), r.output
    assert tree(root) == before


def test_a_fifo_is_refused_at_once(root, tmp_path):
    fifo = tmp_path / "scores.npy"
    os.mkfifo(fifo)
    before = tree(root)
    p = subprocess.run([sys.executable, "-c", "from dmstore.cli import main; main()", "ingest", "scores", str(root), str(fifo), "--name", "m",
                        "--experiment", "e", "--alpha", "0.5", "--targets", TARGETS],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "not a regular file" in p.stderr + p.stdout, p.stderr
    assert tree(root) == before


def test_a_parameter_tensor_is_read_and_no_fit_id_was_burned(root, tmp_path):
    """An nn.Parameter (requires grad) reads as data; after every refusal above the first fit is fit 1."""
    path = _pt(tmp_path / "param.pt", torch.nn.Parameter(torch.from_numpy(_S())))
    r = CliRunner().invoke(cli, ["ingest", "scores", str(root), str(path), "--name", "param", "--experiment", "e",
                                 "--alpha", "0.5", "--targets", TARGETS])
    assert r.exit_code == 0 and "\nfit 1: param on 6 targets" in r.output, r.output
    assert sorted(os.listdir(root / ".tmp")) == []
