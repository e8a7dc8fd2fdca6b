"""Every bad input: a typed error naming the file/row with a fix, exit code 1 from the CLI,
and a store left byte-identical."""
import numpy as np
import pytest
from click.testing import CliRunner

from dmstore.cli import cli
from dmstore import ConflictError, InputError, Store
from dmstore.ingest import ingest_reference, ingest_release

from dmstore.testing import Synth, snapshot, write_release


def _release(dirpath, s, masks=None, train=None, test=None):
    return write_release(dirpath, s.masks if masks is None else masks,
                         s.margins[:, :s.d] if train is None else train,
                         s.margins[:, s.d:] if test is None else test)


@pytest.fixture
def base(tmp_path):
    s = Synth(m=30, d=40, n_test=12, seed=1, f16=True)
    store = Store.create(tmp_path / "st", train_size=40, test_size=12)
    # something already stored, so "unchanged" means more than "empty"
    store.append("prior", 0.5, s.masks[:5], s.margins[:5], s.targets)
    return s, store


def _bad_masks_wrong_length(s):
    return dict(masks=s.masks[:, :39])


def _bad_masks_not_bool(s):
    m = s.masks.astype(np.int8)
    m[4, 2] = 2
    return dict(masks=m)


def _bad_masks_float(s):
    return dict(masks=s.masks.astype(np.float32))


def _bad_alpha(s):
    m = s.masks.copy()
    m[7, :] = False
    m[7, :4] = True  # 10 % of examples under alpha 0.5
    return dict(masks=m)


def _bad_nan(s):
    t = s.margins[:, s.d:].copy()
    t[9, 3] = np.nan
    return dict(test=t)


def _bad_f16_overflow(s):
    t = s.margins[:, :s.d].copy()
    with np.errstate(over="ignore"):
        t[11, 0] = np.float16(60000) * np.float16(2)  # overflows to inf in float16
    return dict(train=t)


def _bad_f32_overflow(s):   # finite float64 that float32 cannot hold used to be stored as inf
    t = s.margins[:, s.d:].astype(np.float64)
    t[13, 2] = 1e300
    return dict(test=t)


def _bad_shape(s):
    return dict(test=s.margins[:, s.d:s.d + 5])


def _bad_rows(s):
    return dict(test=s.margins[:20, s.d:])


def _bad_more_rows(s):   # extra margin rows used to be dropped silently
    return dict(test=np.concatenate([s.margins[:, s.d:], s.margins[:5, s.d:]]))


CASES = [
    (_bad_masks_wrong_length, ["40 train examples"]),
    (_bad_masks_not_bool, ["row 4", "not boolean"]),
    (_bad_masks_float, ["not boolean"]),
    (_bad_alpha, ["row 7", "observed alpha 0.1000"]),
    (_bad_nan, ["row 9", "column 3", "nan", "test_margins_50pct.npy"]),
    (_bad_f16_overflow, ["row 11", "float16 overflow", "train_margins_50pct.npy"]),
    (_bad_f32_overflow, ["row 13", "column 2", "overflows float32", "test_margins_50pct.npy"]),
    (_bad_shape, ["test_margins_50pct.npy", "5 columns"]),
    (_bad_rows, ["test_margins_50pct.npy", "20 rows"]),
    (_bad_more_rows, ["test_margins_50pct.npy", "35 rows", "exactly one row per model"]),
]


@pytest.mark.parametrize("make,words", CASES, ids=[c[0].__name__[5:] for c in CASES])
def test_release_bad_input(tmp_path, base, make, words):
    s, store = base
    rel = _release(tmp_path / "rel", s, **make(s))
    before = snapshot(store.root)
    with pytest.raises(InputError) as e:
        ingest_release(store, rel, 0.5, "x")
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    assert snapshot(store.root) == before
    # the CLI says the same with exit 1 and leaves the store as it was
    res = CliRunner().invoke(cli, ["ingest", "release", str(store.root), str(rel), "--alpha", "0.5",
                                   "--experiment", "x"])
    assert res.exit_code == 1, res.output
    assert res.output.startswith("Error: ") and words[0] in res.output
    assert snapshot(store.root) == before


def test_truncated_and_non_npy(tmp_path, base):
    s, store = base
    rel = _release(tmp_path / "rel", s)
    before = snapshot(store.root)
    p = rel / "test_margins_50pct.npy"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="test_margins_50pct.npy.*truncated"):
        ingest_release(store, rel, 0.5, "x")
    p.write_text("model,margin\n1,2\n")
    with pytest.raises(InputError, match=r"test_margins_50pct.npy: not a .npy file \(it is text"):
        ingest_release(store, rel, 0.5, "x")
    assert snapshot(store.root) == before


def test_bad_late_chunk_writes_nothing(tmp_path, base, monkeypatch):
    """A bad row in the last chunk stops the whole ingestion before any chunk is written."""
    import dmstore.store.batch as B
    monkeypatch.setattr(B, "MAX_CELLS", 52 * 4)
    s, store = base
    t = s.margins[:, s.d:].copy()
    t[29, 0] = np.inf
    rel = _release(tmp_path / "rel", s, test=t)
    before = snapshot(store.root)
    with pytest.raises(InputError, match="row 29"):
        ingest_release(store, rel, 0.5, "x")
    assert snapshot(store.root) == before


def test_append_bad_inputs(base):
    s, store = base
    before = snapshot(store.root)
    M, Y, T = s.masks, s.margins, s.targets
    with pytest.raises(InputError, match="duplicate model id 3"):
        store.append("x", 0.5, M[:4], Y[:4], T, model_ids=[1, 3, 3, 4])
    with pytest.raises(InputError, match="target id 99 .*not in the store"):
        store.append("x", 0.5, M[:4], Y[:4, :3], [0, 1, 99])
    with pytest.raises(InputError, match="margins have shape"):
        store.append("x", 0.5, M[:4], Y[:3], T)
    with pytest.raises(InputError, match="alpha must be in"):
        store.append("x", 1.5, M[:4], Y[:4], T)
    with pytest.raises(InputError, match="unknown role 'test'"):
        store.append("x", 0.5, M[:4], Y[:4], T, roles="test")
    assert snapshot(store.root) == before


def test_conflicts_and_modes(base):
    s, store = base
    M, Y, T = s.masks[:6], s.margins[:6].astype(np.float32), s.targets
    store.append("x", 0.5, M, Y, T, model_ids=np.arange(100, 106))
    before = snapshot(store.root)
    # identical: no-op in every mode
    for mode in ("append", "error", "ignore", "overwrite"):
        r = store.append("x", 0.5, M, Y, T, model_ids=np.arange(100, 106), mode=mode)
        assert (r.skipped, r.added, r.batches) == (6, 0, 0)
    assert snapshot(store.root) == before
    Y2 = Y.copy()
    Y2[2, 5] += 1
    with pytest.raises(ConflictError, match="model id 102 is stored with different content"):
        store.append("x", 0.5, M, Y2, T, model_ids=np.arange(100, 106))
    assert snapshot(store.root) == before
    r = store.append("x", 0.5, M, Y2, T, model_ids=np.arange(100, 106), mode="ignore")
    assert (r.ignored, r.skipped) == (1, 5) and snapshot(store.root) == before
    with pytest.raises(ConflictError, match="already holds 6 models"):
        store.append("x", 0.5, s.masks[6:8], s.margins[6:8], T, model_ids=[200, 201], mode="error")
    r = store.append("x", 0.5, M, Y2, T, model_ids=np.arange(100, 106), mode="overwrite")
    assert (r.replaced, r.skipped) == (1, 5)
    assert np.array_equal(store.margin_matrix("x", 0.5), Y2)
    assert store.model_ids("x", 0.5).tolist() == list(range(100, 106))
    # an id stored under another experiment is a conflict whatever the content
    with pytest.raises(ConflictError, match="model id 0 is stored under experiment 'prior'"):
        store.append("x", 0.5, M[:1], Y[:1], T, model_ids=[0])


def test_source_rows_identity(base):
    """Natural keys (source, source_row): a changed row conflicts, new rows append."""
    s, store = base
    M, Y, T = s.masks[:6], s.margins[:6], s.targets
    store.append("x", 0.5, M, Y, T, source="train:test", source_rows=np.arange(6))
    r = store.append("x", 0.5, s.masks[:8], s.margins[:8], T, source="train:test", source_rows=np.arange(8))
    assert (r.added, r.skipped) == (2, 6)
    Y2 = np.asarray(s.margins[:8], np.float32).copy()
    Y2[0, 0] += 1
    with pytest.raises(ConflictError, match="train:test row 0"):
        store.append("x", 0.5, s.masks[:8], Y2, T, source="train:test", source_rows=np.arange(8))


def test_reference_bad_inputs(tmp_path, base):
    s, store = base
    ref = tmp_path / "ref"
    ref.mkdir()
    np.save(ref / "masks.npy", s.masks)
    np.save(ref / "margins.npy", s.margins[:, :7])
    np.save(ref / "_completed.npy", np.ones(30, bool))
    before = snapshot(store.root)
    with pytest.raises(InputError, match="margins.npy: 7 columns match neither"):
        ingest_reference(store, ref, 0.5, "r")
    np.save(ref / "margins.npy", np.concatenate([s.margins, s.margins[:3]])[:, s.d:])   # more rows than masks
    with pytest.raises(InputError, match="margins.npy: 33 rows but masks.npy has 30"):
        ingest_reference(store, ref, 0.5, "r")
    (ref / "_completed.npy").unlink()
    with pytest.raises(InputError, match="missing _completed.npy"):
        ingest_reference(store, ref, 0.5, "r")
    assert snapshot(store.root) == before


def test_open_errors(tmp_path):
    from dmstore import StoreError
    with pytest.raises(StoreError, match="not a dmstore store"):
        Store.open(tmp_path)
    st = Store.create(tmp_path / "s", train_size=4)
    man = st.root / "dmstore.json"
    import json
    j = json.loads(man.read_text())
    j["format_version"] = 99
    man.write_text(json.dumps(j))
    with pytest.raises(StoreError, match="format version 99 .*format version 2"):
        Store.open(st.root)
    j["format_version"] = 1
    man.write_text(json.dumps(j))
    with pytest.raises(StoreError, match="format version 1 is older.*dmstore migrate"):
        Store.open(st.root)
    with pytest.raises(StoreError, match="opened read-only"):
        j["format_version"] = 2
        man.write_text(json.dumps(j))
        Store.open(st.root).append("x", 0.5, np.ones((1, 4), bool), np.zeros((1, 1)), [0], check_alpha=False)


def _parquet_pair(tmp_path, s, n=6):
    """A models file and a margins file for the first n models of `s` (ids 100..)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    ids = np.arange(100, 100 + n)
    models = pa.table({"model_id": ids, "experiment": ["pq"] * n, "alpha": [0.5] * n,
                       "mask": [np.packbits(r).tobytes() for r in s.masks[:n]]})
    mid = np.repeat(ids, s.targets.size)
    margins = pa.table({"model_id": mid, "example_id": np.tile(s.targets, n).astype(np.int32),
                        "margin": s.margins[:n].astype(np.float32).ravel()})
    return models, margins, pq


@pytest.mark.parametrize("case", ["null_margin", "orphan_margins", "no_example_id", "null_experiment"])
def test_parquet_bad_inputs(tmp_path, base, case):
    import pyarrow as pa
    s, store = base
    models, margins, pq = _parquet_pair(tmp_path, s)
    words = {"null_margin": ["margin is empty (NULL)", "model 101", "example 3"],
             "orphan_margins": ["margins of model 999", "no row in the models file"],
             "no_example_id": ["missing column(s) example_id"],
             "null_experiment": ["row 2: experiment is empty"]}[case]
    if case == "null_margin":
        v = margins["margin"].to_pylist()
        v[s.targets.size + 3] = None
        margins = margins.set_column(2, "margin", pa.array(v, pa.float32()))
    elif case == "orphan_margins":
        extra = pa.table({"model_id": np.full(3, 999), "example_id": np.arange(3, dtype=np.int32),
                          "margin": np.zeros(3, np.float32)})
        margins = pa.concat_tables([margins, extra])
    elif case == "no_example_id":
        margins = margins.drop_columns(["example_id"])
    else:
        v = models["experiment"].to_pylist()
        v[2] = None
        models = models.set_column(1, "experiment", pa.array(v, pa.string()))
    pq.write_table(models, tmp_path / "m.parquet")
    pq.write_table(margins, tmp_path / "y.parquet")
    before = snapshot(store.root)
    res = CliRunner().invoke(cli, ["ingest", "parquet", str(store.root), str(tmp_path / "m.parquet"),
                                   str(tmp_path / "y.parquet")])
    assert res.exit_code == 1 and res.output.startswith("Error: "), res.output
    for w in words:
        assert w in res.output, (w, res.output)
    assert snapshot(store.root) == before


def test_examples_with_an_empty_split_are_refused(tmp_path):
    f = tmp_path / "ex.csv"
    f.write_text("example_id,split,label\n0,train,1\n1,,0\n2,test,1\n")
    res = CliRunner().invoke(cli, ["init", str(tmp_path / "s"), "--examples", str(f)])
    assert res.exit_code == 1 and "data row 2: split is empty" in res.output, res.output
    assert not (tmp_path / "s").exists()


def test_damaged_manifest_and_missing_fit(tmp_path, base):
    import json
    s, store = base
    res = CliRunner().invoke(cli, ["report", str(store.root), "--fit", "9", "-o", str(tmp_path / "r.html")])
    assert res.exit_code == 1 and "no fit 9" in res.output and "dmstore fit" in res.output, res.output
    man = store.root / "dmstore.json"
    j = json.loads(man.read_text())
    del j["train_size"]
    man.write_text(json.dumps(j))
    res = CliRunner().invoke(cli, ["info", str(store.root)])
    assert res.exit_code == 1 and "lacks train_size" in res.output, res.output
