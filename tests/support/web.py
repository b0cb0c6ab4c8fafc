"""The web view as the tests reach it: an Airflow login token, and a client of the app mounted
under ``/meccano`` as ``meccano.web.airflow_plugin`` mounts it in Airflow's API server."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from meccano.web.settings import WebSettings


def admin_token(username: str = "admin") -> str:
    """A JWT from Airflow's auth manager (as the API server builds it) for an admin user: what the UI's
    ``_token`` cookie or an API client's bearer header carries. The tests' one use of Airflow's
    auth-manager modules (internal; tests/test_airflow_internal_contract.py pins them)."""
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return init_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role="admin"))


def web_client(jwt: str | None = None, settings: WebSettings | None = None) -> TestClient:
    """A client of the web view's app under ``/meccano`` (``settings``: the app's own when None);
    logged in with ``jwt`` when given."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from meccano.web.app import create_app

    outer = FastAPI()
    outer.mount("/meccano", create_app(settings))
    client = TestClient(outer)
    if jwt:
        client.headers["Authorization"] = f"Bearer {jwt}"
    return client


def api_server_env(base: dict[str, str], home: Path, jwt_secret: str) -> dict[str, str]:
    """``base`` plus what a standalone Airflow API server of the tests needs: its own home and SQLite metadata
    database, no examples, this checkout's dags/ and plugins/ folders, a JWT secret of the test's own."""
    root = Path(__file__).resolve().parents[2]
    return {**base,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret}
