"""The house, second pass (issue 24): one owner of fit results (one identity, one "no fit"
message, one dense reader), notebook verbs on the Store, the registry of attribution methods,
the typed recipe protocols, the plain-DuckDB script of a store without `features`, the caches
under storage's paths, progress in notebooks and a report that leaves matplotlib alone."""
import re

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner

import dmstore
from dmstore import InputError, NotFoundError, Store, StoreError
from dmstore.attribution import registry
from dmstore.cli import cli
from dmstore.engine import export_scores
from dmstore.recipes.protocol import AttributionRecipe, TrainingRecipe, check, missing
from dmstore.testing import alpha_masks

D, N = 30, 6


@pytest.fixture
def st(tmp_path):
    """A store without a `features` column: margins linear in the mask, fit/val/eval models."""
    rng = np.random.default_rng(7)
    X = alpha_masks(rng, 220, D, 0.5)
    Y = (X @ rng.normal(size=(D, D + N)) + rng.normal(scale=0.3, size=(220, D + N))).astype(np.float32)
    roles = np.array(["fit"] * 150 + ["val"] * 30 + ["eval"] * 40, dtype=object)
    s = Store.create(tmp_path / "s", train_size=D, test_size=N)
    s.append("e", 0.5, X, Y, np.arange(D + N), roles=roles)
    return s


def readme_notebook_example() -> str:
    from pathlib import Path
    text = (Path(__file__).parents[2] / "README.md").read_text()
    block = text.split("<!-- notebook example -->", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert len([x for x in block.strip().splitlines() if x.strip()]) == 5
    return block


def test_notebook_verbs_from_open_to_the_method_table(st, tmp_path):
    """The README's five-line notebook example runs as written (on this store), then the verbs."""
    code = readme_notebook_example().replace('"demo-out/store"', repr(str(st.root))).replace('"digits"', '"e"')
    ns = {}
    exec(code, ns)
    assert list(ns["store"].compare().to_pandas()["estimator"]) == ["diff_means"]
    assert ns["W"].shape == (N, D)
    np.save(tmp_path / "trak.npy", np.random.default_rng(1).normal(size=(N, D)).astype(np.float32))
    store = dmstore.Store.open(st.root, mode="a")
    lasso = store.fit("e", 0.5, n_lambdas=8, progress=False)
    trak = store.ingest_scores(tmp_path / "trak.npy", "trak", "e", 0.5, progress=False)
    table = store.compare().to_pandas()
    assert list(table["estimator"]) == ["diff_means", "lasso", "trak"] and table["n_lds"].tolist() == [N, N, N]
    # FitResult reads its fit back: weights equal export --scores, metrics equal eval_metrics
    for r in (lasso, trak):
        W = r.weights()
        assert W.shape == (N, D) and W.dtype == np.float32
        assert r.target_ids.tolist() == list(range(D, D + N))
        export_scores(st.root, r.fit_id, tmp_path / f"{r.fit_id}.npy")
        assert np.array_equal(W, np.load(tmp_path / f"{r.fit_id}.npy"))
        m = r.metrics()
        sql = dmstore.connect(st.root).sql(f"SELECT target_id, spearman FROM eval_metrics WHERE fit_id = {r.fit_id} "
                                           f"ORDER BY target_id").fetchall()
        assert list(zip(m["target_id"].to_pylist(), m["spearman"].to_pylist())) == sql
    # the weights of a lasso fit, by numpy from the weights relation
    w = dmstore.connect(st.root).sql(f"SELECT target_id, train_id, weight FROM datamodels WHERE fit_id = "
                                     f"{lasso.fit_id}").fetchnumpy()
    dense = np.zeros((N, D), np.float32)
    dense[w["target_id"] - D, w["train_id"]] = w["weight"]
    assert np.array_equal(lasso.weights(), dense)


def test_dense_blocks_skip_the_join_only_for_fits_that_keep_no_path(st, tmp_path, monkeypatch):
    """A fit's dense matrix (weights(), export --scores, embed) reads `weights` alone when the fit
    stored only its selected weights, and joins with `fits` when --keep-path stored the whole
    path: either way the matrix equals numpy's pivot of `datamodels`."""
    from dmstore.engine import weights as ew
    store = dmstore.Store.open(st.root, mode="a")
    plain = store.fit("e", 0.5, n_lambdas=6, progress=False)
    path = store.fit("e", 0.5, n_lambdas=6, keep_path=True, progress=False)
    np.save(tmp_path / "s.npy", np.random.default_rng(2).normal(size=(N, D)).astype(np.float32))
    scores = store.ingest_scores(tmp_path / "s.npy", "s", "e", 0.5, progress=False)
    con = dmstore.connect(st.root)
    stored = dict(con.sql("SELECT fit_id, count(*) FROM weights GROUP BY fit_id").fetchall())
    assert stored[path.fit_id] > stored[plain.fit_id]          # the path really holds more than the selection
    for r, query in ((plain, "fit_weights_block_stored"), (path, "fit_weights_block"), (scores, "fit_weights_block_stored")):
        used, real = [], ew.run
        monkeypatch.setattr(ew, "run", lambda c, name, **p: used.append(name) or real(c, name, **p))
        W = r.weights()
        monkeypatch.setattr(ew, "run", real)
        assert query in used and ({"fit_weights_block", "fit_weights_block_stored"} - {query}).isdisjoint(used)
        w = con.sql(f"SELECT target_id, train_id, weight FROM datamodels WHERE fit_id = {r.fit_id}").fetchnumpy()
        dense = np.zeros((N, D), np.float32)
        dense[w["target_id"] - D, w["train_id"]] = w["weight"]
        assert np.array_equal(W, dense) and np.count_nonzero(dense) > 0


def test_a_read_only_store_says_which_mode_to_use(st):
    with pytest.raises(StoreError, match=r"opened read-only \(Store.open's default\); to write, open it with "
                                         r"Store.open\('.*', mode='a'\)"):
        Store.open(st.root).fit("e", 0.5, progress=False)


def test_one_message_for_a_missing_fit_everywhere(st, tmp_path):
    from dmstore.analysis import build_report, embed
    from dmstore.analysis.retrain import fit_info
    from dmstore.engine.query import query as run_query
    store = Store.open(st.root, "a")
    store.fit("e", 0.5, estimator="diff_means", progress=False)
    want = r"no fit 9 in .*; its fits are 1 \(diff_means\)"
    calls = [lambda: export_scores(st.root, 9, tmp_path / "x.npy"), lambda: embed(store, 9),
             lambda: build_report(store, 9, tmp_path / "r.html"), lambda: fit_info(store, 9),
             lambda: run_query(st.root, "SELECT * FROM topk_neighbors(9, 3)")]
    for call in calls:
        with pytest.raises(NotFoundError, match=want):
            call()
    r = CliRunner().invoke(cli, ["export", str(st.root), "--scores", "9", "-o", str(tmp_path / "y.npy")])
    assert r.exit_code == 1 and re.search(want, r.output), r.output


def test_a_method_registered_once_is_everywhere(st, tmp_path, monkeypatch):
    """One registry entry: the CLI's choices and help, the demo's baselines and the README's
    table see it (tests/attribution computes one end to end)."""
    m = registry.Method("fakeattr", "a fake method", ("fakelib",), 3, "x:y", what="counts", default="K = 3",
                        computed_with="the test")
    registry.register(m)
    try:
        help_text = CliRunner().invoke(cli, ["attribute", "--help"]).output
        assert "fakeattr" in help_text and "fakeattr 3" in help_text
        assert "| `fakeattr` | the test | counts | K = 3 |" in registry.markdown_table()
        from types import SimpleNamespace

        from dmstore import demo
        asked = []

        def attribute(store, method, **kw):
            asked.append(method)
            return SimpleNamespace(fit_id=len(asked), summary=lambda: method)
        monkeypatch.setattr("dmstore.attribution.run.attribute", attribute)
        assert list(demo._baselines(None, lambda line: None)) == ["trak", "if", "tracin", "graddot", "repsim",
                                                                   "fakeattr"]
        monkeypatch.undo()
    finally:
        registry.unregister("fakeattr")
    assert "fakeattr" not in CliRunner().invoke(cli, ["attribute", "--help"]).output


def test_the_readme_table_is_the_registry():
    from pathlib import Path
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert registry.markdown_table() in readme


def test_recipe_protocols_name_what_a_plug_in_lacks():
    class Half:
        name = "half"

        def examples(self):
            pass

        def train(self, masks, seeds):
            pass

        def model(self):
            pass
    assert missing(Half(), TrainingRecipe) == []
    assert missing(Half(), AttributionRecipe) == ["full_models", "attribution_data", "output", "loss", "features"]
    with pytest.raises(InputError, match="recipe 'x' cannot be used for attribution: it lacks full_models, "
                                         "attribution_data, output, loss, features"):
        check(Half(), AttributionRecipe, "x", "for attribution")
    from dmstore.recipes import load_recipe
    assert isinstance(load_recipe("digits"), AttributionRecipe)
    with pytest.raises(InputError, match="lacks name, examples, train"):
        check(object(), TrainingRecipe, "y", "for training")


def test_views_script_runs_in_plain_duckdb_without_features(st):
    Store.open(st.root, "a").fit("e", 0.5, estimator="diff_means", progress=False)
    r = CliRunner().invoke(cli, ["views", str(st.root)])
    assert r.exit_code == 0, r.output
    assert "MACRO neighbor_features" not in r.output and "MACRO leakage_recall_nn" not in r.output
    con = duckdb.connect()
    con.execute(r.output)
    got = con.sql("SELECT count(*) FROM topk_neighbors(1, 3)").fetchall()[0][0]
    assert got == dmstore.connect(st.root).sql("SELECT count(*) FROM topk_neighbors(1, 3)").fetchall()[0][0] > 0
    r = CliRunner().invoke(cli, ["views", str(st.root), "--view", "neighbor_features"])
    assert r.exit_code == 1 and "needs examples.features, which this store's examples does not have" in r.output


def test_caches_are_storage_paths_shown_by_info_and_cleaned_by_vacuum(st):
    from dmstore.storage import paths as P
    for name, size in ((P.RETRAIN, 100), (P.ATTRIBUTION, 250)):
        (st.root / name).mkdir()
        (st.root / name / "x.bin").write_bytes(b"\0" * size)
    r = CliRunner().invoke(cli, ["info", str(st.root)])
    assert "cache _retrain/: 1 file(s), 100 bytes" in r.output and "cache _attribution/: 1 file(s), 250 bytes" \
        in r.output, r.output
    assert Store.open(st.root).info()["caches"] == {P.RETRAIN: {"files": 1, "bytes": 100},
                                                   P.ATTRIBUTION: {"files": 1, "bytes": 250}}
    r = CliRunner().invoke(cli, ["vacuum", str(st.root)])
    assert (st.root / P.RETRAIN).exists(), r.output                     # only with --caches
    r = CliRunner().invoke(cli, ["vacuum", str(st.root), "--caches"])
    assert r.exit_code == 0 and "deleted cache _retrain/: 1 file(s), 100 bytes" in r.output, r.output
    assert not (st.root / P.RETRAIN).exists() and not (st.root / P.ATTRIBUTION).exists()


def test_vacuum_keeps_caches_while_a_writer_runs(st):
    from dmstore.storage import lease
    from dmstore.storage import paths as P
    (st.root / P.RETRAIN).mkdir()
    (st.root / P.RETRAIN / "chunk.npy").write_bytes(b"x")
    with lease.held(st.root, "counterfactual"):
        r = st.vacuum(caches=True)
    assert "a running writer may be using them" in r["caches_kept"] and (st.root / P.RETRAIN / "chunk.npy").exists()


def test_the_report_leaves_matplotlib_as_it_was(st, tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt
    from dmstore.analysis import build_report
    store = Store.open(st.root, "a")
    r = store.fit("e", 0.5, n_lambdas=5, progress=False)
    backend, figs = matplotlib.get_backend(), plt.get_fignums()
    with matplotlib.rc_context():
        matplotlib.use("svg")
        build_report(store, r.fit_id, tmp_path / "r.html")
        assert matplotlib.get_backend() == "svg" and plt.get_fignums() == figs
    matplotlib.use(backend)
    assert (tmp_path / "r.html").stat().st_size > 10_000


def test_progress_in_a_notebook_is_tqdm_auto(monkeypatch):
    from tqdm.auto import tqdm as auto_tqdm

    import dmstore.progress as P
    monkeypatch.setattr(P, "in_notebook", lambda: True)
    bar = P.progress(total=3, desc="x")
    assert isinstance(bar, auto_tqdm)
    bar.close()
    monkeypatch.setattr(P, "in_notebook", lambda: False)
    assert not isinstance(P.progress(total=3, desc="x"), auto_tqdm) or P.sys.stderr.isatty()


def test_summary_says_whether_the_selected_fits_hit_the_cap(st):
    r = Store.open(st.root, "a").fit("e", 0.5, n_lambdas=6, max_iter=2, solver="fista", lambda_min_ratio=1e-4, progress=False)
    assert r.n_not_converged > 0
    assert re.search(r"\d+ \(target, lambda\) pairs hit the iteration cap, (none at a selected lambda|\d+ at the "
                     r"selected lambda)", r.summary())
    con = dmstore.connect(st.root)
    sel = con.sql(f"SELECT count(*) FROM fits WHERE fit_id = {r.fit_id} AND selected AND NOT converged").fetchall()[0][0]
    assert r.n_selected_not_converged == sel
