"""The FastAPI app of the web view, mounted by ``plugins/meccano_web.py`` under ``/meccano``.

Endpoints (all GET, all need an Airflow login unless stated):

* ``/``                                  the HTML page
* ``/plugins``                           the listing (JSON); also readable with the console token
                                         or from an allow-listed address
* ``/plugins/{plugin}/docs``             the plugin's ``assets/index.html``
* ``/plugins/{plugin}/assets/{path}``    other files of its ``assets/`` folder
* ``/reports/{name}``                    the kept reports of a plugin (JSON, newest first)
* ``/reports/{name}/latest/{file}``      a file of the latest report
* ``/reports/{name}/{stamp}/{file}``     a file of one kept report
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import mimetypes
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from meccano.config import ConfigError, Settings, load_settings
from meccano.reports.store import PUBLISHED_SUFFIXES, ReportStore, ReportStoreError, root_location
from meccano.web.files import asset_path, plugin_folder
from meccano.web.listing import PluginRow, build_listing
from meccano.web.page import render_page
from meccano.web.settings import WebSettings, web_settings

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Meccano-Token"
_bearer = HTTPBearer(auto_error=False)
NOT_FOUND = "not found"
# The page is shown inside the Airflow UI (an iframe on the same origin): no other framing,
# no scripts, nothing loaded from elsewhere.
PAGE_CSP = ("default-src 'self'; style-src 'unsafe-inline'; img-src 'self'; frame-src 'self'; "
            "script-src 'none'; frame-ancestors 'self'")
DOCS_CSP = "sandbox; default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self'; frame-ancestors 'self'"


async def require_user(request: Request,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> object:
    """An Airflow login: the UI's cookie or an API bearer token (GetUserDep's rules)."""
    from airflow.api_fastapi.core_api.security import get_user

    return await get_user(request, None, credentials)


def _roots(request: Request) -> tuple[str, str]:
    """(this app's URL prefix, the Airflow UI's) as seen by the browser."""
    base = str(request.scope.get("root_path", "")).rstrip("/")
    return base, base.rsplit("/", 1)[0] if base else ""


def create_app(settings_override: WebSettings | None = None) -> FastAPI:
    try:
        settings = load_settings()
    except ConfigError as exc:  # the page must still answer; the DAG meccano_config_error shows why
        log.error("Meccano web view: invalid configuration, using defaults: %s", exc)
        settings = Settings()
    web = settings_override or web_settings(settings)
    try:
        store = ReportStore.from_settings(settings)
    except ReportStoreError as exc:
        log.error("Meccano web view: %s; keeping the default number of reports", exc)
        store = ReportStore(root_location(settings))
    # No Swagger/ReDoc pages: they load their scripts from a CDN. The schema is at /openapi.json.
    app = FastAPI(title="Meccano plugins", version="1.0", docs_url=None, redoc_url=None,
                  description="The Meccano ServiceManager's plugins, their runs, reports and docs.")
    if web.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(web.cors_origins), allow_methods=["GET"],
                           allow_headers=["Authorization", TOKEN_HEADER], allow_credentials=False, max_age=600)

    async def listing_access(request: Request,
                             credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
        """The console token, an allow-listed address, or an Airflow login."""
        token = web.console_token.get()
        offered = request.headers.get(TOKEN_HEADER) or (credentials.credentials if credentials else "")
        if token and offered and hmac.compare_digest(offered.encode(), token.encode()):
            return
        if web.allow_list and request.client is not None:
            try:
                address = ipaddress.ip_address(request.client.host)
            except ValueError:
                address = None
            if address is not None and any(address in net for net in web.allow_list):
                return
        await require_user(request, credentials)

    logged_in = [Depends(require_user)]

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 401 and request.url.path.rstrip("/") == _roots(request)[0]:
            _, airflow = _roots(request)
            return HTMLResponse(f'<!doctype html><title>Log in</title><p>Log in to Airflow first: '
                                f'<a href="{airflow}/" target="_top">Airflow</a>.</p>', status_code=401)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.get("/plugins", response_model=list[PluginRow], dependencies=[Depends(listing_access)],
             summary="Every plugin with its plugin.json fields, validity, runs and links")
    def plugins(request: Request) -> list[PluginRow]:
        base, airflow = _roots(request)
        return build_listing(store, base, airflow, timezone=settings.timezone)

    @app.get("/", response_class=HTMLResponse, dependencies=logged_in, include_in_schema=False)
    def page(request: Request) -> HTMLResponse:
        base, airflow = _roots(request)
        html = render_page(build_listing(store, base, airflow, timezone=settings.timezone), f"{base}/plugins",
                           settings.timezone)
        return HTMLResponse(html, headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store",
                                           "X-Frame-Options": "SAMEORIGIN"})

    def _asset(plugin: str, path: str) -> FileResponse:
        folder = plugin_folder(plugin)
        found = asset_path(folder, path) if folder is not None else None
        if found is None:
            raise HTTPException(404, NOT_FOUND)
        media = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        return FileResponse(found, media_type=media, headers={"Content-Security-Policy": DOCS_CSP,
                                                              "X-Content-Type-Options": "nosniff"})

    @app.get("/plugins/{plugin}/docs", dependencies=logged_in, summary="The plugin's assets/index.html")
    def docs(plugin: str) -> FileResponse:
        return _asset(plugin, "index.html")

    @app.get("/plugins/{plugin}/assets/{path:path}", dependencies=logged_in, summary="A file of assets/")
    def asset(plugin: str, path: str) -> FileResponse:
        return _asset(plugin, path)

    @app.get("/reports/{name}", dependencies=logged_in, summary="The kept reports of a plugin, newest first")
    def report_history(name: str, request: Request) -> list[dict]:
        base, _ = _roots(request)
        entries = store.history_of(name)
        return [{**e.as_dict(), "links": {f: f"{base}/reports/{name}/{e.stamp}/{f}" for f in e.files}}
                for e in entries]

    @app.get("/reports/{name}/{stamp}/{filename}", dependencies=logged_in, summary="A file of a report")
    def report_file(name: str, stamp: str, filename: str) -> Response:
        immutable = stamp != "latest"
        if not immutable:
            entry = store.latest(name)
            if entry is None:
                raise HTTPException(404, NOT_FOUND)
            stamp = entry.stamp
        try:
            data = store.read(name, stamp, filename)
        except FileNotFoundError:
            raise HTTPException(404, NOT_FOUND) from None
        media = PUBLISHED_SUFFIXES["." + filename.rsplit(".", 1)[-1]]
        cache = "private, max-age=86400, immutable" if immutable else "no-cache"
        return Response(data, media_type=media, headers={"Cache-Control": cache, "X-Content-Type-Options": "nosniff"})

    return app
