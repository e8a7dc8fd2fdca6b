"""Byte-exact round trips of masks, margins and seeds through every ingestion path."""
import numpy as np
import pyarrow.parquet as pq

from dmstore import Store
from dmstore.engine import export
from dmstore.ingest import ingest_parquet, ingest_reference, ingest_release

from dmstore.testing import Synth, write_release


def _check(store, exp, alpha, s, targets=None, rows=None):
    rows = np.arange(s.masks.shape[0]) if rows is None else rows
    X = store.mask_matrix(exp, alpha)
    Y = store.margin_matrix(exp, alpha, targets=targets)
    want_y = s.margins[rows].astype(np.float32)
    if targets is not None:
        want_y = want_y[:, targets]
    assert X.dtype == bool and np.array_equal(X, s.masks[rows])
    assert Y.dtype == np.float32 and Y.tobytes() == np.ascontiguousarray(want_y).tobytes()
    seeds = store.models(exp, alpha, columns=["model_id", "seed"])["seed"].to_numpy()
    return seeds


def test_append_roundtrip(store, synth):
    r = store.append("e", 0.5, synth.masks, synth.margins, synth.targets, seeds=synth.seeds)
    assert r.added == 60 and r.model_ids.tolist() == list(range(60))
    seeds = _check(store, "e", 0.5, synth)
    assert np.array_equal(seeds, synth.seeds)


def test_append_subset_of_targets_and_order(store, synth):
    t = np.array([45, 3, 7, 50])  # unsorted on purpose
    store.append("e", 0.5, synth.masks, synth.margins[:, t], t)
    Y = store.margin_matrix("e", 0.5, targets=[3, 7, 45, 50])
    assert Y.tobytes() == np.ascontiguousarray(synth.margins[:, [3, 7, 45, 50]]).tobytes()
    Y2 = store.margin_matrix("e", 0.5, targets=[50, 3])  # any order in, ascending out
    assert np.array_equal(Y2, synth.margins[:, [3, 50]])


def test_release_roundtrip_float16(tmp_path):
    s = Synth(m=70, d=48, n_test=16, f16=True, seed=3)
    rel = write_release(tmp_path / "release", s.masks, s.margins[:, :48], s.margins[:, 48:])
    store = Store.create(tmp_path / "st", train_size=48, test_size=16)
    r = ingest_release(store, rel, 0.5, "cifar", eval_last=10)
    assert r.added == 70
    _check(store, "cifar", 0.5, s)
    roles = store.models("cifar", 0.5, columns=["model_id", "role"])["role"].to_pylist()
    assert roles == ["fit"] * 60 + ["eval"] * 10
    assert np.array_equal(store.margin_matrix("cifar", 0.5, role="eval"),
                          s.margins[60:].astype(np.float32))
    # float16 → float32 is exact: compare in float16 too
    assert np.array_equal(store.margin_matrix("cifar", 0.5).astype(np.float16), s.margins)


def test_release_chunked(tmp_path, monkeypatch):
    import dmstore.store.batch as B
    monkeypatch.setattr(B, "MAX_CELLS", 16 * 7)  # 16 targets: 7 models a chunk
    s = Synth(m=50, d=48, n_test=16, seed=4)
    rel = write_release(tmp_path / "r", s.masks, test=s.margins[:, 48:])
    store = Store.create(tmp_path / "st", train_size=48, test_size=16)
    r = ingest_release(store, rel, 0.5, "c")
    assert r.batches == 8 and r.added == 50
    _check(store, "c", 0.5, s, targets=np.arange(48, 64))
    assert ingest_release(store, rel, 0.5, "c").skipped == 50


def test_reference_roundtrip_completed_only(tmp_path):
    s = Synth(m=40, d=32, n_test=10, seed=5)
    ref = tmp_path / "ref"
    ref.mkdir()
    done = np.ones(40, bool)
    done[[3, 17, 39]] = False
    np.save(ref / "masks.npy", s.masks)
    np.save(ref / "margins.npy", s.margins[:, 32:].astype(np.float16))
    np.save(ref / "train_margins.npy", s.margins[:, :32])
    np.save(ref / "test_accuracies.npy", np.linspace(0, 1, 40))
    np.save(ref / "_completed.npy", done)
    store = Store.create(tmp_path / "st", train_size=32, test_size=10)
    r = ingest_reference(store, ref, 0.5, "ref")
    assert r.added == 37
    rows = np.flatnonzero(done)
    X = store.mask_matrix("ref", 0.5)
    assert np.array_equal(X, s.masks[rows])
    Y = store.margin_matrix("ref", 0.5)
    want = np.concatenate([s.margins[rows, :32], s.margins[rows, 32:].astype(np.float16).astype(np.float32)], 1)
    assert Y.tobytes() == want.astype(np.float32).tobytes()
    t = store.models("ref", 0.5, columns=["source_row", "test_accuracy"])
    assert t["source_row"].to_pylist() == rows.tolist()
    assert np.allclose(t["test_accuracy"].to_numpy(), np.linspace(0, 1, 40)[rows])


def test_parquet_export_ingest_roundtrip(tmp_path, filled, synth):
    export(filled.root, tmp_path / "models.parquet", "models")
    export(filled.root, tmp_path / "margins.parquet", "margins")
    assert pq.read_schema(tmp_path / "models.parquet").field("mask").type.equals("binary")
    other = Store.create(tmp_path / "other", train_size=synth.d, test_size=synth.n_test)
    r = ingest_parquet(other, [tmp_path / "models.parquet", tmp_path / "margins.parquet"])
    assert r.added == 60
    a = filled.models("exp", 0.5, columns=["model_id", "seed", "role", "mask_id", "digest"])
    b = other.models("exp", 0.5, columns=["model_id", "seed", "role", "mask_id", "digest"])
    assert a.equals(b)  # same ids, seeds, roles, masks ids and content digests
    assert np.array_equal(other.mask_matrix("exp", 0.5), synth.masks)
    assert other.margin_matrix("exp", 0.5).tobytes() == synth.margins.tobytes()
    # idempotent
    assert ingest_parquet(other, [tmp_path / "models.parquet", tmp_path / "margins.parquet"]).skipped == 60


def test_parquet_accepts_bit_text_masks(tmp_path, filled, synth):
    """A BIT column written by DuckDB to Parquet becomes '0101…' text: accepted too."""
    con = filled.connect(sandbox=False)  # the test writes a file with it
    con.sql("SELECT * FROM models").write_parquet(str(tmp_path / "m.parquet"))
    export(filled.root, tmp_path / "y.parquet", "margins")
    other = Store.create(tmp_path / "o", train_size=synth.d, test_size=synth.n_test)
    ingest_parquet(other, [tmp_path / "m.parquet", tmp_path / "y.parquet"])
    assert np.array_equal(other.mask_matrix("exp", 0.5), synth.masks)


def test_roles_and_iter_chunks(filled, synth):
    ids = filled.model_ids("exp", 0.5, role=["val", "eval"])
    assert ids.tolist() == list(range(40, 60))
    chunks = list(filled.iter_chunks("exp", 0.5, role="fit", targets=[1, 45], max_rows=16))
    assert [c["masks"].shape[0] for c in chunks] == [16, 16, 8]
    X = np.concatenate([c["masks"] for c in chunks])
    Y = np.concatenate([c["margins"] for c in chunks])
    assert np.array_equal(X, synth.masks[:40]) and np.array_equal(Y, synth.margins[:40][:, [1, 45]])


def test_arrow_ipc_files_ingest(tmp_path, filled, synth):
    import pyarrow.feather as feather
    export(filled.root, tmp_path / "models.parquet", "models")
    export(filled.root, tmp_path / "margins.parquet", "margins")
    feather.write_feather(pq.read_table(tmp_path / "margins.parquet"), tmp_path / "margins.arrow",
                          chunksize=1000)
    feather.write_feather(pq.read_table(tmp_path / "models.parquet"), tmp_path / "models.arrow")
    other = Store.create(tmp_path / "o", train_size=synth.d, test_size=synth.n_test)
    r = ingest_parquet(other, [tmp_path / "models.arrow", tmp_path / "margins.arrow"])
    assert r.added == 60
    assert other.margin_matrix("exp", 0.5).tobytes() == synth.margins.tobytes()
    (tmp_path / "junk.bin").write_bytes(b"not a table")
    import pytest
    from dmstore import InputError
    with pytest.raises(InputError, match="junk.bin: neither a Parquet nor an Arrow IPC file"):
        ingest_parquet(other, [tmp_path / "junk.bin", tmp_path / "margins.arrow"])


def test_release_read_once_and_all_or_nothing(tmp_path, monkeypatch):
    """Ingest reads its input once (each chunk validated, then written privately); a chunk that
    fails late — after earlier chunks were written — leaves the store byte-exact as it was."""
    import dmstore.ingest.npy as ing
    import dmstore.store.batch as B
    from dmstore.errors import InputError
    from dmstore.testing import snapshot
    monkeypatch.setattr(B, "MAX_CELLS", 16 * 7)   # 7 models a chunk: 8 chunks
    s = Synth(m=50, d=48, n_test=16, f16=True, seed=5)
    rel = write_release(tmp_path / "r", s.masks, test=s.margins[:, 48:])
    store = Store.create(tmp_path / "st", train_size=48, test_size=16)
    reads = []
    make = ing.ModelBatch.from_arrays

    class Counting(ing.ModelBatch):   # each chunk of the input becomes one batch, once
        @classmethod
        def from_arrays(cls, **kw):
            reads.append(kw["row0"])
            return make(**kw)
    monkeypatch.setattr(ing, "ModelBatch", Counting)
    r = ingest_release(store, rel, 0.5, "e")
    assert r.added == 50 and r.batches == 8
    assert reads == list(range(0, 50, 7))          # every chunk read exactly once
    _check(store, "e", 0.5, s, targets=np.arange(48, 64))
    assert np.array_equal(store.mask_matrix("e", 0.5, packed=True), np.packbits(s.masks, axis=1))

    bad = s.margins[:, 48:].copy()
    bad[45, 3] = np.inf                              # in the last chunk
    rel2 = write_release(tmp_path / "r2", s.masks, test=bad)
    before = snapshot(store.root)
    reads.clear()
    try:
        ingest_release(store, rel2, 0.5, "e2")
        raise AssertionError("a non-finite margin was accepted")
    except InputError as e:
        assert "row 45, column 3" in str(e) and "float16 overflow" in str(e)
    assert reads == list(range(0, 42, 7))          # six chunks were read and written before …
    assert snapshot(store.root) == before            # … yet nothing of them is visible or left
    assert not any((store.root / ".tmp").iterdir())


def test_conflict_in_a_late_batch_leaves_store_as_it_was(tmp_path, monkeypatch):
    """The plan is made batch by batch: a conflicting record in the last batch is found after
    the earlier batches were written privately; they are discarded and nothing is visible."""
    import pytest
    import dmstore.store.batch as L
    from dmstore.errors import ConflictError
    from dmstore.testing import snapshot
    s = Synth(m=40, d=48, n_test=16, seed=6)
    store = Store.create(tmp_path / "st", train_size=48, test_size=16)
    store.append("old", 0.5, s.masks[:1], s.margins[:1], s.targets, model_ids=[39])
    before = snapshot(store.root)
    monkeypatch.setattr(L, "MAX_CELLS", 64 * 10)     # 10 models a batch: 4 batches
    with pytest.raises(ConflictError, match="model id 39 is stored under experiment 'old'"):
        store.append("new", 0.5, s.masks, s.margins, s.targets, model_ids=np.arange(40))
    assert snapshot(store.root) == before
    assert not any((store.root / ".tmp").iterdir())
    assert store.model_ids("new", 0.5).size == 0
