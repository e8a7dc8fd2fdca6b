"""The explorer's routes through Starlette's test client: every page and its JSON twin, their
numbers against SQL run directly on the store (and numpy/scipy for agreement), and the
guarantees attacked: no writes, integer ids, traversal, huge results, a cancelled query."""
import hashlib
import io
import warnings
import zlib

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
warnings.filterwarnings("ignore", message=".*httpx.*")
from starlette.testclient import TestClient  # noqa: E402

from dmstore.engine.connect import connect  # noqa: E402
from dmstore.serve.app import create_app  # noqa: E402
from dmstore.train import train  # noqa: E402


def _tree(root):
    """Every file of the store with its bytes' digest: the store left exactly as it was."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".tmp" not in p.parts}


@pytest.fixture(scope="module")
def app(digits_store):
    before = _tree(digits_store["root"])
    a = create_app(digits_store["root"], timeout_s=1.0)
    yield a
    a.state.snapshot.close()
    assert _tree(digits_store["root"]) == before   # nothing any route did wrote to the store


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def con(digits_store):
    return connect(digits_store["root"])


def _decode_png(b: bytes) -> np.ndarray:
    """A grey 8-bit PNG (filter 0 rows, as dmstore writes them) as uint8 [h, w]."""
    assert b[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w, h = 8, b"", 0, 0
    while pos < len(b):
        n = int.from_bytes(b[pos:pos + 4], "big")
        kind, data = b[pos + 4:pos + 8], b[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h = int.from_bytes(data[:4], "big"), int.from_bytes(data[4:8], "big")
            assert data[8:10] == b"\x08\x00"
        elif kind == b"IDAT":
            idat += data
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, w + 1)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:]


def test_home_and_twin(client, con, digits_store):
    api = client.get("/api/").json()
    want = {r[0]: (r[1], r[2]) for r in con.execute("SELECT fit_id, estimator, lds FROM estimator_comparison").fetchall()}
    got = {f["fit_id"]: (f["estimator"], f["lds"]) for f in api["fits"]}
    assert got.keys() == want.keys() == {digits_store["lasso"], digits_store["dm"]}
    for k in want:
        assert got[k][0] == want[k][0] and got[k][1] == pytest.approx(want[k][1])
    roles = {(r["role"]): r["models"] for r in api["experiments"]}
    assert roles == dict(con.execute("SELECT role, count(*) FROM models GROUP BY role").fetchall())
    assert api["store"]["images"] == "recipe" and api["store"]["version"] >= 1
    page = client.get("/")
    assert page.status_code == 200 and "lasso" in page.text and "diff_means" in page.text
    assert f'href="/targets?fit={digits_store["lasso"]}"' in page.text
    assert "http://" not in page.text and "https://" not in page.text   # nothing from a CDN
    assert client.get("/static/vendor/chart.umd.min.js").status_code == 200


def test_target_page_against_sql(client, con, digits_store):
    t, f = digits_store["targets"][0], digits_store["lasso"]
    k = 5
    api = client.get(f"/api/target/{t}?k={k}").json()
    assert api["example"] == {"example_id": t, "split": "test", "label": con.execute(
        f"SELECT label FROM examples WHERE example_id = {t}").fetchall()[0][0], "group_key": None}
    fits = {x["fit_id"]: x for x in api["fits"]}
    assert set(fits) == {digits_store["lasso"], digits_store["dm"]}
    lasso = fits[f]
    top = con.execute(f"SELECT train_id, weight FROM dm_weights({f}) WHERE target_id = {t} AND weight > 0 "
                      f"ORDER BY weight DESC, train_id LIMIT {k}").fetchall()
    assert [(r["train_id"], pytest.approx(r["weight"])) for r in lasso["positive"]] == [(a, pytest.approx(b)) for a, b in top]
    bot = con.execute(f"SELECT train_id, weight FROM dm_weights({f}) WHERE target_id = {t} AND weight < 0 "
                      f"ORDER BY weight, train_id LIMIT {k}").fetchall()
    assert [r["train_id"] for r in lasso["negative"]] == [a for a, _ in bot]
    labels = dict(con.execute("SELECT example_id, label FROM examples").fetchall())
    assert all(r["label"] == labels[r["train_id"]] for r in lasso["positive"] + lasso["negative"])
    # predicted vs actual on every eval model
    sc = con.execute(f"SELECT p.predicted, y.margin FROM eval_predictions p JOIN margins y ON y.model_id = p.model_id "
                     f"AND y.example_id = p.target_id WHERE p.fit_id = {f} AND p.target_id = {t} ORDER BY p.model_id").fetchall()
    n_eval = con.execute("SELECT count(*) FROM models WHERE role = 'eval'").fetchall()[0][0]
    assert len(lasso["scatter"]) == len(sc) == n_eval > 0
    assert np.allclose([r["predicted"] for r in lasso["scatter"]], [a for a, _ in sc])
    for x in api["fits"]:
        sp = con.execute(f"SELECT spearman FROM eval_metrics WHERE fit_id = {x['fit_id']} AND target_id = {t}").fetchall()
        assert x["lds"] == pytest.approx(sp[0][0], abs=1e-9)
    ds = con.execute(f"SELECT support, expected_margin FROM data_support({f}) WHERE target_id = {t}").fetchall()[0]
    assert lasso["support"]["support"] == ds[0] and lasso["support"]["expected_margin"] == pytest.approx(ds[1])
    # agreement: top-k overlap and Kendall tau over all d train examples, computed independently
    from scipy.stats import kendalltau
    d = con.execute("SELECT count(*) FROM examples WHERE split = 'train'").fetchall()[0][0]
    dense = {}
    for fid in fits:
        v = np.zeros(d)
        for i, w in con.execute(f"SELECT train_id, weight FROM dm_weights({fid}) WHERE target_id = {t}").fetchall():
            v[i] = w
        dense[fid] = v
    (a,) = api["agreement"]
    assert a["kendall"] == pytest.approx(kendalltau(dense[a["fit_a"]], dense[a["fit_b"]]).statistic)
    tops = [set(np.argsort(-dense[x], kind="stable")[:k]) for x in (a["fit_a"], a["fit_b"])]
    assert a["topk_overlap"] == pytest.approx(len(tops[0] & tops[1]) / k)
    # the stored counterfactual and the command that would test another set
    cf = con.execute(f"SELECT selector, k, actual_effect FROM counterfactuals WHERE target_id = {t}").fetchall()
    assert [(c["selector"], c["k"], pytest.approx(c["actual_effect"])) for c in api["counterfactuals"]] == \
        [(s, kk, pytest.approx(e)) for s, kk, e in cf] and cf
    assert lasso["removals_command"].startswith(f"dmstore counterfactual {digits_store['root']} --fit {f} --removals ")
    csv = client.get(lasso["removals_csv"]).text.splitlines()
    assert csv[0] == "set_id,target_id,train_id" and [int(x.split(",")[2]) for x in csv[1:]] == [a for a, _ in top]
    page = client.get(f"/target/{t}?k={k}").text
    for r in lasso["positive"]:
        assert f'href="/example/{r["train_id"]}"' in page and f'src="/img/{r["train_id"]}.png"' in page
    assert lasso["removals_command"] in page.replace("&#39;", "'")


def test_example_page_against_sql(client, con, digits_store):
    f = digits_store["lasso"]
    i = con.execute(f"SELECT train_id FROM dm_weights({f}) GROUP BY train_id ORDER BY count(*) DESC, train_id "
                    f"LIMIT 1").fetchall()[0][0]
    api = client.get(f"/api/example/{i}?k=3").json()
    infl = {x["fit_id"]: x for x in api["influence"]}
    want = con.execute(f"SELECT target_id FROM dm_weights({f}) WHERE train_id = {i} AND weight > 0 "
                       f"ORDER BY weight DESC, target_id LIMIT 3").fetchall()
    assert [r["target_id"] for r in infl[f]["positive"]] == [r[0] for r in want]
    lk = {(r[0], r[1]) for r in con.execute(f"SELECT target_id, leakage_rank FROM leakage({f}, 1) "
                                               f"WHERE train_id = {i}").fetchall()}
    assert {(r["target_id"], r["leakage_rank"]) for r in api["leakage"] if r["fit_id"] == f} == lk
    wide = {x["fit_id"]: x for x in client.get(f"/api/example/{i}?k=25").json()["influence"]}   # the direct query
    for fid, x in infl.items():
        for side in ("positive", "negative"):
            assert [(r["target_id"], r["rank"]) for r in x[side]] == \
                [(r["target_id"], r["rank"]) for r in wide[fid][side][:3]]
    page = client.get(f"/example/{i}").text
    assert all(f'href="/target/{r["target_id"]}"' in page for r in infl[f]["positive"])
    # a test example: its page says it influences nothing and links to its target page
    t = digits_store["targets"][0]
    ex = client.get(f"/api/example/{t}").json()
    assert ex["influence"] == [] and set(ex["is_target_in"]) == {digits_store["lasso"], digits_store["dm"]}


def test_large_fits_scan_for_the_example_instead_of_a_per_fit_table(client, con, digits_store, monkeypatch):
    """Past EXAMPLE_INDEX_WEIGHTS selected weights a fit's example page scans for its own row
    (no per-fit table over all weights): the same targets, ranks and weights as the table gives."""
    from dmstore.serve import pages
    f = digits_store["lasso"]
    n = con.execute(f"SELECT sum(nnz) FROM fits WHERE fit_id = {f} AND selected").fetchall()[0][0]
    i = con.execute(f"SELECT train_id FROM dm_weights({f}) GROUP BY train_id ORDER BY count(*) DESC, train_id "
                    f"LIMIT 1").fetchall()[0][0]
    indexed = client.get(f"/api/example/{i}?k=4").json()["influence"]
    from dmstore.serve.snapshot import Snapshot
    monkeypatch.setattr(pages, "EXAMPLE_INDEX_WEIGHTS", n - 1)        # the lasso fit is now "large"
    calls, rows = [], Snapshot.rows
    monkeypatch.setattr(Snapshot, "rows", lambda self, name, **p: calls.append(name) or rows(self, name, **p))
    page = client.get(f"/api/example/{i}?k=4").json()
    scanned = page["influence"]
    assert "serve_example_influence" in calls
    # the page says which fit it scanned and the command that gives it a train-major copy
    large = con.execute(f"SELECT fit_id, sum(nnz) FROM fits WHERE selected GROUP BY fit_id HAVING sum(nnz) > {n - 1} "
                        f"ORDER BY fit_id").fetchall()
    assert [(s["fit_id"], s["n_weights"]) for s in page["scanned"]] == large and (f, n) in large
    html = client.get(f"/example/{i}").text
    for s in page["scanned"]:
        assert s["command"] == f"dmstore compact {digits_store['root']} --by-train {s['fit_id']}" and s["command"] in html
    key = lambda infl: [(x["fit_id"], x["estimator"], [(r["target_id"], r["rank"], round(r["weight"], 6),   # noqa: E731
                                                        r["target_label"]) for r in x["positive"] + x["negative"]])
                        for x in infl]
    assert key(scanned) == key(indexed) and any(x["fit_id"] == f for x in scanned)


def test_large_fits_with_a_train_major_copy_read_it_instead_of_a_scan(client, con, digits_store, monkeypatch,
                                                                     tmp_path):
    """A copy of the store whose lasso fit has a train-major copy (`compact --by-train`): its
    example pages, every fit "large", read the copy for that fit and scan for the other, and give
    the same targets, ranks, weights and labels as the original store's pages."""
    import shutil

    from dmstore import Store
    from dmstore.serve import pages
    from dmstore.serve.snapshot import Snapshot
    f = digits_store["lasso"]
    i = con.execute(f"SELECT train_id FROM dm_weights({f}) GROUP BY train_id ORDER BY count(*) DESC, train_id "
                    f"LIMIT 1").fetchall()[0][0]
    want = client.get(f"/api/example/{i}?k=4").json()["influence"]
    root = tmp_path / "store"
    shutil.copytree(digits_store["root"], root)
    assert Store.open(root, "a").copy_by_train(f, progress=False)["written"]
    monkeypatch.setattr(pages, "EXAMPLE_INDEX_WEIGHTS", 0)        # every fit is "large"
    calls, rows = [], Snapshot.rows
    monkeypatch.setattr(Snapshot, "rows", lambda self, name, **p: calls.append((name, p.get("fits"))) or rows(self, name, **p))
    a = create_app(root, timeout_s=5.0)
    try:
        with TestClient(a) as c:
            page = c.get(f"/api/example/{i}?k=4").json()
            got = page["influence"]
            assert c.get(f"/example/{i}").status_code == 200
    finally:
        a.state.snapshot.close()
    assert [s["fit_id"] for s in page["scanned"]] == [digits_store["dm"]]   # the copied fit needs no hint
    assert ("serve_example_by_train", [f]) in calls and ("serve_example_influence", [digits_store["dm"]]) in calls
    key = lambda infl: [(x["fit_id"], x["estimator"], [(r["target_id"], r["rank"], round(r["weight"], 6),   # noqa: E731
                                                        r["target_label"]) for r in x["positive"] + x["negative"]])
                        for x in infl]
    assert key(got) == key(want) and any(x["fit_id"] == f and x["positive"] for x in got)


def test_leakage_and_targets_against_sql(client, con, digits_store):
    f, g = digits_store["lasso"], digits_store["dm"]
    api = client.get(f"/api/leakage?fit={f}&n=5").json()
    want = con.execute(f"SELECT target_id, train_id FROM leakage({f}, 1) ORDER BY leakage_rank LIMIT 5").fetchall()
    assert [(r["target_id"], r["train_id"]) for r in api["rows"]] == want and api["more"]
    assert client.get("/leakage").status_code == 200          # the newest lasso fit by default
    by_lds = client.get(f"/api/targets?fit={f}&order=lds&n=100").json()
    sp = dict(con.execute(f"SELECT target_id, spearman FROM eval_metrics WHERE fit_id = {f}").fetchall())
    got = [r["lds"] for r in by_lds["rows"]]
    assert [r["target_id"] for r in by_lds["rows"]] == sorted(sp, key=lambda x: (sp[x] is None, sp[x] or 0, x))
    assert got == sorted(got) and by_lds["total"] == len(digits_store["targets"])
    dis = client.get(f"/api/targets?fit={f}&order=disagreement&vs={g}&n=100").json()
    d = con.execute("SELECT count(*) FROM examples WHERE split = 'train'").fetchall()[0][0]
    assert dis["total"] == len(digits_store["targets"]) and len(dis["rows"]) == dis["total"]
    for r in dis["rows"]:                # every target against numpy's correlation of the two vectors
        x, y = np.zeros(d), np.zeros(d)
        for fid, v in ((f, x), (g, y)):
            for i, w in con.execute(f"SELECT train_id, weight FROM dm_weights({fid}) WHERE target_id = {r['target_id']}").fetchall():
                v[i] = w
        assert r["agreement"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-6)
    ag = [r["agreement"] for r in dis["rows"]]
    assert ag == sorted(ag)
    sup = client.get(f"/api/targets?fit={f}&order=support&n=2&page=1").json()
    assert len(sup["rows"]) == 2 and sup["page"] == 1
    assert client.get(f"/targets?fit={f}&order=disagreement").status_code == 422   # needs vs
    assert client.get(f"/api/targets?fit={f}&order=nonsense").status_code == 422
    assert client.get(f"/targets?fit={f}&order=lds").status_code == 200


def test_sql_box(client, con):
    r = client.get("/api/sql", params={"q": "SELECT fit_id, estimator FROM fit_runs ORDER BY fit_id"}).json()
    assert r["result"]["rows"] == [list(x) for x in con.execute("SELECT fit_id, estimator FROM fit_runs ORDER BY fit_id").fetchall()]
    big = client.get("/api/sql", params={"q": "SELECT * FROM range(250000)", "page": 2}).json()
    res = big["result"]
    assert len(res["rows"]) == 100 and res["rows"][0] == [200] and res["more"] and res["page"] == 2
    assert any(m["name"] == "topk_neighbors" for m in big["macros"])
    page = client.get("/sql", params={"q": "SELECT 42 AS answer"})
    assert page.status_code == 200 and "<th>answer</th>" in page.text and "<td>42</td>" in page.text
    csv = client.get("/sql/download", params={"q": "SELECT * FROM range(3) t(i)", "format": "csv"})
    assert csv.text.splitlines() == ["i", "0", "1", "2"] and "attachment" in csv.headers["content-disposition"]
    pq = client.get("/sql/download", params={"q": "SELECT * FROM range(5) t(i)", "format": "parquet"})
    import pyarrow.parquet as papq
    assert papq.read_table(io.BytesIO(pq.content)).column("i").to_pylist() == list(range(5))


@pytest.mark.parametrize("q", [
    "DROP VIEW models", "CREATE TABLE x AS SELECT 1", "COPY (SELECT 1) TO '/tmp/dmstore-serve-x.csv'",
    "ATTACH '/tmp/dmstore-serve-x.db'", "SELECT * FROM read_csv('/etc/passwd')", "INSTALL httpfs",
    "SET threads = 1", "SELECT 1; DELETE FROM models",
])
def test_sql_box_refuses_what_query_refuses(client, q):
    r = client.get("/api/sql", params={"q": q})
    assert r.status_code == 400 and r.json()["error"] and r.json()["result"] is None
    assert client.get("/sql/download", params={"q": q, "format": "csv"}).status_code == 400
    page = client.get("/sql", params={"q": q})
    assert page.status_code == 400 and 'class="error"' in page.text


def test_sql_time_limit(client):
    r = client.get("/api/sql", params={"q": "SELECT sum(hash(i)) FROM range(20000000000) t(i)"})
    assert r.status_code == 400 and "cancelled" in r.json()["error"]
    assert client.get("/api/sql", params={"q": "SELECT 1 AS one"}).json()["result"]["rows"] == [[1]]   # still serving


@pytest.mark.parametrize("url,status", [
    ("/target/abc", 404), ("/target/-1", 404), ("/target/1.5", 404), ("/target/99999999", 404),
    ("/example/99999999", 404), ("/img/99999999.png", 404), ("/img/..%2f..%2fetc%2fpasswd.png", 404),
    ("/static/../../pyproject.toml", 404), ("/static/%2e%2e/%2e%2e/pyproject.toml", 404),
    ("/leakage?fit=999", 404), ("/leakage?fit=x", 422), ("/target/1347?k=0", 422), ("/api/targets?fit=1&n=-3", 422),
    ("/api/target/1347/removals.csv", 422),
])
def test_bad_paths_and_parameters(client, url, status):
    r = client.get(url)
    assert r.status_code == status, (url, r.text[:200])


def test_no_route_writes(client):
    for url in ("/", "/sql", "/api/sql", "/target/1347", "/reload"):
        assert client.post(url).status_code == 405
        assert client.delete(url).status_code == 405


def test_reload_redirect_stays_on_site(client):
    for nxt, where in (("/target/1347", "/target/1347"), ("//evil.example/x", "/"), ("https://evil.example", "/"),
                       ("/\\evil.example", "/")):
        r = client.get("/reload", params={"next": nxt}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == where


def test_images(client, con, digits_store):
    from dmstore.recipes import load_recipe
    r = client.get("/img/5.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert "max-age" in r.headers["cache-control"] and r.headers["etag"]
    assert (_decode_png(r.content) == load_recipe("digits").image([5])[0]).all()


def test_store_without_pictures_and_with_a_folder(tmp_path):
    from tests.train.test_train import TINY  # a plug-in recipe that cannot draw its examples
    root = tmp_path / "s"
    train(root, "tests.train.test_train:TINY", models=40, batch=40, progress=False)
    from dmstore import Store
    from dmstore.fit import fit
    fit(Store.open(root, "a"), TINY.name, 0.5, estimator="diff_means", progress=False)
    with TestClient(create_app(root)) as c:
        assert c.get("/api/").json()["store"]["images"] is None
        t = c.get("/api/targets").json()["rows"][0]["target_id"]
        page = c.get(f"/target/{t}").text
        assert "<img" not in page and 'class="noimg"' in page    # ids and labels, no broken images
        assert c.get(f"/img/{t}.png").status_code == 404
    pics = tmp_path / "pics"
    pics.mkdir()
    from dmstore.serve.images import png
    img = (np.arange(12, dtype=np.uint8) * 20).reshape(3, 4)
    (pics / "0.png").write_bytes(png(img))
    with TestClient(create_app(root, images=pics)) as c:
        assert (_decode_png(c.get("/img/0.png").content) == img).all()
        assert c.get("/img/1.png").status_code == 404
        assert 'src="/img/' in c.get(f"/target/{t}").text


def test_serving_while_train_appends(tmp_path):
    root = tmp_path / "s"
    train(root, "tests.train.test_train:TINY", models=40, batch=40, progress=False)
    with TestClient(create_app(root)) as c:
        v0 = c.get("/api/version").json()
        assert v0["serving"] == v0["latest"]
        n0 = c.get("/api/sql", params={"q": "SELECT count(*) FROM models"}).json()["result"]["rows"][0][0]
        train(root, "tests.train.test_train:TINY", models=20, batch=20, role="eval", progress=False)
        v1 = c.get("/api/version").json()
        assert v1["serving"] == v0["serving"] and v1["latest"] > v0["latest"]
        assert c.get("/api/sql", params={"q": "SELECT count(*) FROM models"}).json()["result"]["rows"][0][0] == n0  # one snapshot
        assert c.get("/reload", params={"next": "/"}, follow_redirects=False).status_code == 303
        assert c.get("/api/version").json()["serving"] == v1["latest"]
        assert c.get("/api/sql", params={"q": "SELECT count(*) FROM models"}).json()["result"]["rows"][0][0] == n0 + 20
