"""Where the web view serves a plugin's pages, declared once below both rooms that speak of them: the DAG factory
links each DAG's docs to the plugin's documentation page, the web view (:mod:`meccano.web`) serves it."""

from __future__ import annotations

from urllib.parse import quote

WEB_PREFIX = "/meccano"  # the web view's FastAPI app, mounted by the Airflow plugin
CONSOLE_PREFIX = "/meccano-console"  # the original console's API (token only)


def docs_route(folder_name: str) -> str:
    """The route of the plugin folder ``folder_name``'s documentation page, below :data:`WEB_PREFIX`."""
    return f"/plugins/{quote(folder_name, safe=':')}/docs"
