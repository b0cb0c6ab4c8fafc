"""What every route of the web view needs, built once per app and handed out as FastAPI
dependencies (routes are plain functions; nothing is captured in a closure)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from meccano.errors import ConfigError, ReportStoreError
from meccano.reports.store import ReportStore, root_location
from meccano.settings.config import Settings, load_settings
from meccano.web.settings import WebSettings, web_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebContext:
    settings: Settings
    web: WebSettings
    store: ReportStore


def build_context(web_override: WebSettings | None = None) -> WebContext:
    """Settings, web settings and report store; a broken configuration falls back to defaults
    (the page must still answer; the DAG ``meccano_config_error`` shows why)."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        log.error("Meccano web view: invalid configuration, using defaults: %s", exc)
        settings = Settings()
    web = web_override or web_settings(settings)
    try:
        store = ReportStore.from_settings(settings)
    except ReportStoreError as exc:
        log.error("Meccano web view: %s; keeping the default number of reports", exc)
        store = ReportStore(root_location(settings))
    return WebContext(settings, web, store)


def get_context(request: Request) -> WebContext:
    context: WebContext = request.app.state.meccano  # set by the app factory at start-up
    return context


@dataclass(frozen=True)
class UrlRoots:
    """This app's URL prefix and the Airflow UI's, as seen by the browser."""

    app: str
    airflow: str


def get_roots(request: Request) -> UrlRoots:
    base = str(request.scope.get("root_path", "")).rstrip("/")
    return UrlRoots(base, base.rsplit("/", 1)[0] if base else "")


Context = Annotated[WebContext, Depends(get_context)]
Roots = Annotated[UrlRoots, Depends(get_roots)]
