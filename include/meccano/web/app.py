"""The FastAPI app of the web view, mounted by :mod:`meccano.web.airflow_plugin` under ``/meccano``.

Endpoints (all GET, all need an Airflow login unless stated), one router each in
:mod:`meccano.web.routes`:

* ``/``                                  the HTML page
* ``/plugins``                           the listing (JSON); also readable with the console token
                                         or from an allow-listed address
* ``/plugins/{plugin}/docs``             the plugin's ``assets/index.html``
* ``/plugins/{plugin}/assets/{path}``    other files of its ``assets/`` folder
* ``/reports/{name}``                    the kept reports of a plugin (JSON, newest first)
* ``/reports/{name}/latest/{file}``      a file of the latest report
* ``/reports/{name}/{stamp}/{file}``     a file of one kept report

A new endpoint module adds its ``router`` to :data:`meccano.web.routes.ROUTERS` (or is
included here); routes get what they need through the dependencies of
:mod:`meccano.web.context` and :mod:`meccano.web.access`.
"""

from __future__ import annotations

from html import escape

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from meccano.settings.secrets import mask_known_secrets
from meccano.web.access import allow_console_origins
from meccano.web.context import build_context, get_roots
from meccano.web.routes import ROUTERS
from meccano.web.settings import WebSettings

LOGIN_PAGE = ('<!doctype html><title>Log in</title><p>Log in to Airflow first: '
              '<a href="{airflow}/" target="_top">Airflow</a>.</p>')


async def http_error(request: Request, exc: Exception) -> Response:
    """JSON errors; the page itself answers a 401 with a link to Airflow's login."""
    assert isinstance(exc, HTTPException)
    roots = get_roots(request)
    if exc.status_code == 401 and request.url.path.rstrip("/") == roots.app:

        return HTMLResponse(LOGIN_PAGE.format(airflow=escape(roots.airflow)), status_code=401)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def create_app(settings_override: WebSettings | None = None) -> FastAPI:
    # No Swagger/ReDoc pages: they load their scripts from a CDN. The schema is at /openapi.json.
    app = FastAPI(title="Meccano plugins", version="1.0", docs_url=None, redoc_url=None,
                  description="The Meccano ServiceManager's plugins, their runs, reports and docs.")
    app.state.meccano = context = build_context(settings_override)
    mask_known_secrets(context.settings)  # Airflow's masker hides them in the API server's logs and tracebacks
    allow_console_origins(app, context.web)
    app.add_exception_handler(HTTPException, http_error)
    for router in ROUTERS:
        app.include_router(router)
    return app
