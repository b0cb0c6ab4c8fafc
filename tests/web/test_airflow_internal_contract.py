"""The web view's only uses of Airflow internals (meccano/web/airflow_internal.py), pinned.

If an Airflow upgrade renames, moves or reshapes any of them, these tests fail with a
message that says what changed, instead of the web view failing quietly (401 for everyone,
or a listing without runs)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from meccano.web import airflow_internal

ROOT = Path(__file__).resolve().parents[2]
INTERNAL = re.compile(r"^\s*(from|import)\s+airflow\.(api_fastapi|models|utils\.session)\b", re.M)


def test_logged_in_user_dependency_is_as_used():
    get_user = airflow_internal.user_dependency()
    assert inspect.iscoroutinefunction(get_user), f"{airflow_internal.USER_DEPENDENCY} is no longer async"
    assert airflow_internal.user_dependency_signature() == airflow_internal.USER_DEPENDENCY_PARAMETERS, (
        f"{airflow_internal.USER_DEPENDENCY} changed its parameters: "
        f"{airflow_internal.user_dependency_signature()}; adapt require_user in meccano/web/airflow_internal.py")


def test_dag_and_run_models_have_the_columns_read():
    dag_model, dag_run = airflow_internal.dag_and_run_models()
    for model, columns in ((dag_model, airflow_internal.DAG_COLUMNS), (dag_run, airflow_internal.RUN_COLUMNS)):
        missing = [c for c in columns if not hasattr(model, c)]
        assert not missing, f"Airflow's {model.__name__} lost {missing}; adapt meccano/web/airflow_internal.py"


def test_latest_runs_query_runs_on_the_metadata_database(airflow_db):
    assert airflow_internal.latest_runs(["no_such_dag"]) == ({}, {})


def test_nothing_else_imports_airflow_internals():
    offenders = []
    for path in [*(ROOT / "include").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]:
        if path.name != "airflow_internal.py" and INTERNAL.search(path.read_text()):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_require_user_accepts_airflow_tokens_and_refuses_the_rest():
    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient

    from tests.support.web import admin_token

    token = admin_token("ada")
    app = FastAPI()

    @app.get("/who")
    def who(user=Depends(airflow_internal.require_user)) -> str:  # noqa: ANN001 (resolved by FastAPI)
        return user.get_name()  # type: ignore[attr-defined]

    client = TestClient(app)
    assert client.get("/who", headers={"Authorization": f"Bearer {token}"}).json() == "ada"
    assert client.get("/who", cookies={"_token": token}).json() == "ada"
    assert client.get("/who").status_code == 401
    assert client.get("/who", headers={"Authorization": "Bearer forged"}).status_code in (401, 403)


def test_pool_slots_reads_the_pool_model(airflow_db):
    from airflow.models.pool import Pool

    missing = [c for c in airflow_internal.POOL_COLUMNS if not hasattr(Pool, c)]
    assert not missing, f"Airflow's Pool lost {missing}; adapt meccano/web/airflow_internal.py"
    assert airflow_internal.pool_slots("default_pool") == 128  # Airflow's own pool, made by the migration
    assert airflow_internal.pool_slots("no_such_pool") is None


def test_the_per_dag_read_check_is_as_used():
    """The web view filters what a user sees with the API server's auth manager (``is_authorized_dag``, GET, a
    ``DagDetails`` by id): the names and keywords it passes are still there."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import BaseAuthManager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    assert f"{get_auth_manager.__module__}.{get_auth_manager.__name__}" == airflow_internal.AUTH_MANAGER
    parameters = inspect.signature(BaseAuthManager.is_authorized_dag).parameters
    assert tuple(p for p in parameters if p != "self") == airflow_internal.DAG_CHECK_PARAMETERS, (
        "BaseAuthManager.is_authorized_dag changed its parameters; adapt readable_dag_ids in "
        "meccano/web/airflow_internal.py")
    assert DagDetails(id="x").id == "x"


def test_readable_dag_ids_asks_the_configured_auth_manager():
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    from tests.support.web import admin_token

    admin_token()  # initializes the auth manager as the API server does (SimpleAuthManager here)
    admin = SimpleAuthManagerUser(username="ada", role="admin")
    assert airflow_internal.readable_dag_ids(admin, ["a", "b", "a"]) == {"a", "b"}
