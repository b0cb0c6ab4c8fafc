"""The original web console's API, unchanged: ``GET /plugins`` and each report's ``output.png``.

The Node.js ServiceManager answered ``GET http://<load balancer>:<PORT>/plugins`` with its
*loaded* plugins (their ``plugin.json`` objects) and served each report plugin's
``assets/output.png``. This app gives a console configured for it the same answers. It is
mounted in Airflow's API server at ``/meccano-console`` (:mod:`meccano.web.airflow_plugin`); the
load balancer maps the console's port and paths onto it (``docker/nginx/nginx.conf``), and
the demo serves it on the console port directly.

* ``GET /plugins``                               the loaded plugins: valid, highest version,
                                                 each its ``plugin.json`` as written
* ``GET /plugins?all=1``                         also shadowed and invalid folders, each with
                                                 ``status`` (``loaded``/``shadowed``/``invalid``)
* ``GET /plugins/{plugin}/output.png``           the report's current chart; ``{plugin}`` is
  ``GET /plugins/{plugin}/assets/output.png``    ``name`` or ``name:version`` (the loaded one)

One credential opens exactly these, nothing else: the console token
(``MECCANO_WEB_CONSOLE_TOKEN``, header ``X-Meccano-Token`` or ``Authorization: Bearer``), or
a client address on the allow-list (``MECCANO_WEB_CONSOLE_ALLOW``). Browsers may call it from
the origins in ``MECCANO_WEB_CORS_ORIGINS``. With neither token nor allow-list the console
API is closed (401 saying how to open it).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from meccano.contract.manifest import PluginLoad, PluginManifest, PluginType
from meccano.plugins.discovery import Catalog, discover
from meccano.reports.store import ReportStore
from meccano.settings.rules import parse_bool
from meccano.web.access import TOKEN_HEADER, allow_console_origins, console_credential
from meccano.web.context import build_context
from meccano.web.settings import WebSettings

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False)
_CLOSED = ("the console API is closed: set MECCANO_WEB_CONSOLE_TOKEN (web.consoleToken) and send it as "
           f"{TOKEN_HEADER} or Authorization: Bearer, or allow the console's address in MECCANO_WEB_CONSOLE_ALLOW")


def console_listing(catalog: Catalog, include_all: bool = False) -> list[dict[str, Any]]:
    """The loaded plugins' ``plugin.json`` objects, as written; with ``include_all`` the rest too."""
    def raw(load: PluginLoad) -> dict[str, Any]:
        return dict(load.raw) if isinstance(load.raw, dict) else {}

    if not include_all:
        return [raw(load) for load in catalog.active]
    rows = [{**raw(load), "status": "loaded", "folder": load.folder.name} for load in catalog.active]
    rows += [{**raw(s.load), "status": "shadowed", "shadowedBy": s.by, "folder": s.load.folder.name}
             for s in catalog.shadowed]
    rows += [{**raw(load), "status": "invalid", "folder": load.folder.name,
              "errors": [str(p.relative()) for p in load.problems]} for load in catalog.invalid]
    return rows


def _web(request: Request) -> WebSettings:
    web: WebSettings = request.app.state.web
    return web


def _store(request: Request) -> ReportStore:
    store: ReportStore = request.app.state.store
    return store


async def console_access(request: Request,
                         credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """The console's one credential: its token, or a client address on the allow-list."""
    web = _web(request)
    if console_credential(request, web, credentials):
        return
    if not web.console_token and not web.allow_list:
        raise HTTPException(401, _CLOSED)
    raise HTTPException(401, "missing or wrong console token", headers={"WWW-Authenticate": "Bearer"})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def plugins(all: Annotated[str, Query()] = "") -> list[dict[str, Any]]:  # noqa: A002 - the console's name
    """``GET /plugins``: the loaded plugins (``?all=1``: shadowed and invalid folders too).

    ``all`` follows the configuration's one boolean rule (``config.parse_bool``); absent or empty is false, any
    other word is a 400 that names it.
    """
    try:
        everything = parse_bool(all) if all.strip() else False
    except ValueError as exc:
        raise HTTPException(400, f"query parameter all: {exc}") from None
    return console_listing(discover(), everything)


def _loaded_report(plugin: str) -> PluginManifest:
    name, _, version = plugin.partition(":")
    catalog = discover(name=name) if name else None
    load = next((a for a in catalog.active if a.manifest and a.manifest.name == name), None) if catalog else None
    manifest = load.manifest if load is not None else None
    if manifest is None or manifest.type != PluginType.REPORT or (version and version != manifest.version):
        raise HTTPException(404, "no loaded report plugin of that name")
    return manifest


def chart(plugin: str, store: Annotated[ReportStore, Depends(_store)]) -> Response:
    """``GET /plugins/{plugin}/output.png`` (and ``.../assets/output.png``): the current chart."""
    manifest = _loaded_report(plugin)
    entry = store.latest(manifest.name)
    if entry is None or entry.chart is None:
        raise HTTPException(404, f"{manifest.plugin} has not published a chart yet")
    try:
        data = store.read(manifest.name, entry.stamp, entry.chart)
    except FileNotFoundError:
        raise HTTPException(404, f"{manifest.plugin} has not published a chart yet") from None
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-cache",
                                                           "X-Content-Type-Options": "nosniff"})


def create_console_app(web: WebSettings | None = None) -> FastAPI:
    """The console API: routes are the module's functions; settings and store live in ``app.state``.

    A broken configuration falls back to defaults here: the console still answers, and the DAG
    ``meccano_config_error`` shows why.
    """
    context = build_context(web)
    app = FastAPI(title="Meccano console API", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.web, app.state.store = context.web, context.store
    allow_console_origins(app, context.web)
    app.add_exception_handler(HTTPException, _http_error)
    guarded = [Depends(console_access)]
    app.add_api_route("/plugins", plugins, methods=["GET"], dependencies=guarded)
    app.add_api_route("/plugins/{plugin}/output.png", chart, methods=["GET"], dependencies=guarded)
    app.add_api_route("/plugins/{plugin}/assets/output.png", chart, methods=["GET"], dependencies=guarded)
    return app
