"""The web view as the tests reach it: an Airflow login token, and a client of the app mounted
under ``/meccano`` as ``meccano.web.airflow_plugin`` mounts it in Airflow's API server."""

from __future__ import annotations

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
