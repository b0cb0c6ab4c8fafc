"""Airflow plugin: the Meccano web view (include/meccano/web) in Airflow's API server.

Thin on purpose: it mounts the FastAPI app under ``/meccano`` and adds an entry to the
Airflow UI's navigation (Browse -> Meccano plugins) that shows the page inside the UI.
"""

from airflow.plugins_manager import AirflowPlugin

from meccano.web.app import create_app  # the installed package (pyproject.toml, include/meccano)
from meccano.web.console import create_console_app

URL_PREFIX = "/meccano"
# The original console's GET /plugins and report images; the load balancer maps the console's
# port onto it (docker/nginx/nginx.conf). Token-only access (include/meccano/web/console.py).
CONSOLE_PREFIX = "/meccano-console"


class MeccanoWebPlugin(AirflowPlugin):
    name = "meccano_web"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Meccano plugins"},  # noqa: RUF012
                    {"app": create_console_app(), "url_prefix": CONSOLE_PREFIX, "name": "Meccano console API"}]
    external_views = [{  # noqa: RUF012
        "name": "Meccano plugins",
        "href": f"{URL_PREFIX}/",
        "destination": "nav",
        "category": "browse",
        "url_route": "meccano",
    }]
