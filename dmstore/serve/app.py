"""`dmstore serve`: the explorer's web application (Starlette, Jinja2 templates, Chart.js vendored
under static/vendor/). Every page has a JSON twin under /api/ rendering the same dict
(`pages`); no route writes to the store (GET only); path ids are integers (anything else is a
404), query parameters are checked (422)."""
from __future__ import annotations

import json
from importlib import resources
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..engine import catalog
from ..errors import DmstoreError, InputError, NotFoundError, QueryError
from . import pages
from .snapshot import Snapshot

IMAGE_MAX_AGE_S = 86_400   # example pictures do not change within a store


def _templates():
    import jinja2
    env = jinja2.Environment(loader=jinja2.PackageLoader("dmstore.serve", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined)
    env.filters["num"] = lambda v, p=3: "" if v is None else (f"{v:.{p}f}" if isinstance(v, float) else str(v))
    env.filters["tojson_safe"] = lambda v: json.dumps(v).replace("<", "\\u003c").replace(">", "\\u003e") \
        .replace("&", "\\u0026")
    env.filters["urlq"] = lambda v: quote(str(v), safe="")
    return env


def _int(request: Request, name: str, default=None, lo: int = 0, hi: int = 10**12):
    v = request.query_params.get(name)
    if v is None or v == "":
        return default
    try:
        x = int(v)
    except ValueError:
        raise HTTPException(422, f"query parameter {name} must be an integer, got {v!r}") from None
    if not lo <= x <= hi:
        raise HTTPException(422, f"query parameter {name} must be between {lo} and {hi}, got {x}")
    return x


def create_app(store, fit: int | None = None, images=None, timeout_s: float | None = None,
               threads: int | None = None) -> Starlette:
    """The explorer of `store` (a folder) as an ASGI app; `fit` is the default fit of the
    leakage and target lists; `images` an optional folder of `{example_id}.png`."""
    kw = {} if timeout_s is None else {"timeout_s": timeout_s}
    snap = Snapshot(store, images=images, threads=threads, **kw)
    env = _templates()
    if fit is not None:
        pages.require_fit(snap, fit)

    def default_fit(request) -> int:
        f = _int(request, "fit", fit)
        if f is not None:
            return f
        fits = snap.table("serve_fits")
        if not fits:
            raise NotFoundError("the store has no fits yet: run `dmstore fit STORE EXPERIMENT ALPHA`")
        lasso = [r["fit_id"] for r in fits if r["estimator"] == "lasso"]
        return (lasso or [fits[0]["fit_id"]])[-1]

    def render(request, name: str, data: dict, status: int = 200) -> HTMLResponse:
        html = env.get_template(name).render(data=data, version=snap.version, images=snap.images.available,
                                             path=request.url.path, query=str(request.url.query))
        return HTMLResponse(html, status_code=status)

    def twin(page: str, build):
        """A page and its /api/ JSON twin from one builder of the page's dict."""
        async def html_ep(request):
            return render(request, f"{page}.html", await _call(build, request))

        async def api_ep(request):
            return JSONResponse(await _call(build, request))
        return html_ep, api_ep

    async def _call(build, request):
        from starlette.concurrency import run_in_threadpool
        return await run_in_threadpool(build, request)

    home_html, home_api = twin("home", lambda r: pages.home(snap))
    target_html, target_api = twin("target", lambda r: pages.target(snap, r.path_params["t"],
                                                                       k=_int(r, "k", 8, 1, 100)))
    example_html, example_api = twin("example", lambda r: pages.example(snap, r.path_params["i"],
                                                                         k=_int(r, "k", 8, 1, 100)))
    leakage_html, leakage_api = twin("leakage", lambda r: pages.leakage(snap, default_fit(r), n=_int(r, "n", 50, 1, 500),
                                                                         page=_int(r, "page", 0, 0)))
    targets_html, targets_api = twin("targets", lambda r: pages.targets(
        snap, default_fit(r), order=r.query_params.get("order", "lds"), vs=_int(r, "vs"),
        n=_int(r, "n", 50, 1, 500), page=_int(r, "page", 0, 0)))

    def sql_data(request) -> dict:
        q = request.query_params.get("q", "")
        macros = [{"name": o.name, "signature": o.signature, "purpose": o.purpose} for o in catalog.macros()]
        views = [{"name": o.name, "purpose": o.purpose} for o in catalog.objects().values() if o.is_view]
        out = {"q": q, "macros": macros, "views": views, "result": None, "error": None,
               "timeout_s": snap.timeout_s}
        if q.strip():
            try:
                out["result"] = snap.sql(q, page=_int(request, "page", 0, 0))
            except DmstoreError as e:
                out["error"] = str(e)
        return out

    async def sql_html(request):
        data = await _call(sql_data, request)
        return render(request, "sql.html", data, status=400 if data["error"] else 200)

    async def sql_api(request):
        data = await _call(sql_data, request)
        return JSONResponse(data, status_code=400 if data["error"] else 200)

    async def sql_download(request):
        fmt = request.query_params.get("format", "csv")
        if fmt not in ("csv", "parquet"):
            raise HTTPException(422, "format must be csv or parquet")
        q = request.query_params.get("q", "")
        if not q.strip():
            raise HTTPException(422, "give the query as q=…")
        try:
            body = await _call(lambda r: snap.download(q, fmt), request)
        except DmstoreError as e:
            return JSONResponse({"error": str(e)}, status_code=400)
        media = "text/csv" if fmt == "csv" else "application/vnd.apache.parquet"
        return Response(body, media_type=media,
                        headers={"Content-Disposition": f'attachment; filename="dmstore-query.{fmt}"'})

    async def removals(request):
        t = request.path_params["t"]
        f = _int(request, "fit")
        if f is None:
            raise HTTPException(422, "give the fit as fit=F")
        body = await _call(lambda r: pages.removals_csv(snap, t, f, _int(r, "k", 8, 1, 10_000)), request)
        return Response(body, media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="target{t}_fit{f}_removals.csv"'})

    async def image(request):
        i = request.path_params["i"]
        body = await _call(lambda r: snap.png(i), request)
        if body is None:
            raise HTTPException(404, f"no picture of example {i}")
        return Response(body, media_type="image/png",
                        headers={"Cache-Control": f"public, max-age={IMAGE_MAX_AGE_S}",
                                 "ETag": f'"{snap.version}-{i}"'})

    async def version(request):
        return JSONResponse({"serving": snap.version, "latest": await _call(lambda r: snap.latest_version(), request)})

    async def reload(request):
        await _call(lambda r: snap.open(), request)
        nxt = request.query_params.get("next", "/")
        if not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt:
            nxt = "/"
        return RedirectResponse(nxt, status_code=303)

    def api_error(request, status: int, msg: str):
        if request.url.path.startswith("/api/") or request.url.path.startswith("/img/"):
            return JSONResponse({"error": msg}, status_code=status)
        return render(request, "error.html", {"status": status, "message": msg}, status=status)

    async def not_found(request, exc):
        return api_error(request, 404, str(exc.args[0]) if exc.args else "not found")

    async def bad_input(request, exc):
        return api_error(request, 422, str(exc))

    async def http_error(request, exc):
        return api_error(request, exc.status_code, exc.detail)

    static = resources.files("dmstore.serve") / "static"
    routes = [
        Route("/", home_html), Route("/api/", home_api),
        Route("/target/{t:int}", target_html), Route("/api/target/{t:int}", target_api),
        Route("/api/target/{t:int}/removals.csv", removals),
        Route("/example/{i:int}", example_html), Route("/api/example/{i:int}", example_api),
        Route("/leakage", leakage_html), Route("/api/leakage", leakage_api),
        Route("/targets", targets_html), Route("/api/targets", targets_api),
        Route("/sql", sql_html), Route("/api/sql", sql_api), Route("/sql/download", sql_download),
        Route("/img/{i:int}.png", image),
        Route("/api/version", version), Route("/reload", reload),
        Mount("/static", app=StaticFiles(directory=str(static)), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={
        NotFoundError: not_found, InputError: bad_input, QueryError: bad_input, HTTPException: http_error})
    app.state.snapshot = snap
    return app
