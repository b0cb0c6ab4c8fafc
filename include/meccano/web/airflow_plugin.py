"""Airflow plugin: the Meccano web view (:mod:`meccano.web`) in Airflow's API server.

Airflow finds it through the package's ``airflow.plugins`` entry point (pyproject.toml), so any
install of the package has the web view, whatever the plugins folder holds (an image, a git-sync of
dags/ only). It must not also be copied into the plugins folder: Airflow loads that folder first
and then skips the entry point's plugin of the same name, reporting "Plugin 'meccano_web' already
registered" as a plugin import error.

Thin on purpose: it mounts the FastAPI apps under ``/meccano`` and ``/meccano-console`` and adds an
entry to the Airflow UI's navigation (Browse -> Meccano plugins) that shows the page inside the UI.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from meccano.contract.web_paths import CONSOLE_PREFIX, WEB_PREFIX
from meccano.web.app import create_app
from meccano.web.console import create_console_app

NAME = "meccano_web"  # the plugin's name in Airflow, and the entry point's name in pyproject.toml
# The prefixes are declared in meccano.contract.web_paths (the DAG docs link the plugins' pages). The original
# console's GET /plugins and report images live under CONSOLE_PREFIX; the load balancer maps the console's port
# onto it (docker/nginx/nginx.conf). Token-only access (include/meccano/web/console.py).


class MeccanoWebPlugin(AirflowPlugin):
    name = NAME
    fastapi_apps = [{"app": create_app(), "url_prefix": WEB_PREFIX, "name": "Meccano plugins"},  # noqa: RUF012
                    {"app": create_console_app(), "url_prefix": CONSOLE_PREFIX, "name": "Meccano console API"}]
    external_views = [{  # noqa: RUF012
        "name": "Meccano plugins",
        "href": f"{WEB_PREFIX}/",
        "destination": "nav",
        "category": "browse",
        "url_route": "meccano",
    }]
