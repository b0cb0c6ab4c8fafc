"""The only three things the web view takes from Airflow's internals, in one place.

Airflow 3.3 documents no public interface for either, from inside a plugin's FastAPI app:

* **the logged-in user**: the API server's own dependency
  ``airflow.api_fastapi.core_api.security.get_user`` (the UI's ``_token`` cookie or an API
  bearer token, validated by the configured auth manager);
* **the DAGs' pause state, next run and latest run**: Airflow's ORM models ``DagModel`` and
  ``DagRun`` with ``airflow.utils.session.create_session`` (the public REST API would need a
  token of the caller, which the console token's callers do not have).

* **a pool's slots** (is the ``iotdb`` pool there?): Airflow's ORM model ``Pool``, read in the
  same kind of session (the CLI's ``airflow pools get`` would start a process per page).
* **which DAGs the logged-in user may read**: the API server's configured auth manager
  (``airflow.api_fastapi.app.get_auth_manager``) and its public interface method
  ``is_authorized_dag(method="GET", user=..., details=DagDetails(id=...))``, the check Airflow's own
  ``GET /api/v2/dags/{dag_id}`` makes (FAB: ``can_read`` on ``DAGs`` or on ``DAG:<id>``).

``tests/web/test_airflow_internal_contract.py`` pins what is used here (names, signature,
columns): an Airflow upgrade that changes any of it fails that test loudly instead of
failing the web view quietly. Nothing else in ``meccano`` imports these modules.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

USER_DEPENDENCY = "airflow.api_fastapi.core_api.security.get_user"
AUTH_MANAGER = "airflow.api_fastapi.app.get_auth_manager"
# BaseAuthManager.is_authorized_dag(*, method, user, access_entity, details): the keywords passed here.
DAG_CHECK_PARAMETERS = ("method", "user", "access_entity", "details")
# get_user(request, _oauth_token, bearer_credentials): the parameters this module passes.
USER_DEPENDENCY_PARAMETERS = ("request", "_oauth_token", "bearer_credentials")
POOL_COLUMNS = ("pool", "slots")
DAG_COLUMNS = ("dag_id", "is_paused", "next_dagrun_create_after")
RUN_COLUMNS = ("id", "dag_id", "state", "run_id", "start_date", "queued_at", "logical_date", "run_after", "end_date")

bearer = HTTPBearer(auto_error=False)


def user_dependency() -> Any:
    # lazy: airflow.api_fastapi.core_api.security costs 1523 ms at import (python -X importtime)
    from airflow.api_fastapi.core_api.security import get_user

    return get_user


async def require_user(request: Request,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> object:
    """An Airflow login: the UI's cookie or an API bearer token (401/403 otherwise)."""
    get_user = user_dependency()
    return await get_user(request, None, credentials)


def user_dependency_signature() -> tuple[str, ...]:
    return tuple(inspect.signature(user_dependency()).parameters)


def auth_manager() -> Any:
    """The API server's auth manager (the one that validated the user's token)."""
    # lazy: airflow.api_fastapi.app costs 1534 ms at import (python -X importtime)
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager()


def readable_dag_ids(user: object, dag_ids: Iterable[str]) -> set[str]:
    """The DAGs among ``dag_ids`` that the auth manager lets ``user`` read (``GET``), each asked by id."""
    # lazy: airflow.api_fastapi.auth.managers.models.resource_details costs 1011 ms at import (python -X importtime)
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    manager = auth_manager()
    return {dag_id for dag_id in set(dag_ids)
            if manager.is_authorized_dag(method="GET", user=user, details=DagDetails(id=dag_id))}


@contextmanager
def metadata_session() -> Iterator[Any]:
    # lazy: airflow.utils.session costs 1048 ms at import (python -X importtime)
    from airflow.utils.session import create_session

    with create_session() as session:
        yield session


def dag_and_run_models() -> tuple[Any, Any]:
    from airflow.models.dag import DagModel  # lazy: airflow.models.dag costs 1211 ms at import (python -X importtime)

    # lazy: airflow.models.dagrun costs 1147 ms at import (python -X importtime)
    from airflow.models.dagrun import DagRun

    return DagModel, DagRun


def latest_runs(dag_ids: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """({dag_id: DagModel}, {dag_id: its newest DagRun}) in two queries; read inside one session."""
    from sqlalchemy import func, select  # lazy: sqlalchemy costs 119 ms at import (python -X importtime)

    dag_model, dag_run = dag_and_run_models()
    with metadata_session() as session:
        models = {m.dag_id: _columns(m, DAG_COLUMNS)
                  for m in session.scalars(select(dag_model).where(dag_model.dag_id.in_(dag_ids)))}
        newest = select(func.max(dag_run.id)).where(dag_run.dag_id.in_(dag_ids)).group_by(dag_run.dag_id)
        rows = session.scalars(select(dag_run).where(dag_run.id.in_(newest)))
        runs = {r.dag_id: _columns(r, RUN_COLUMNS) for r in rows}
    return models, runs


def _columns(row: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """Plain values, read while the session is open (nothing lazy escapes it)."""
    return {name: getattr(row, name) for name in names}


def pool_slots(name: str) -> int | None:
    """The slots of the pool ``name``; None when it does not exist."""
    from airflow.models.pool import Pool  # lazy: airflow.models.pool costs 1029 ms at import (python -X importtime)
    from sqlalchemy import select  # lazy: sqlalchemy costs 119 ms at import (python -X importtime)

    with metadata_session() as session:
        slots = session.scalar(select(Pool.slots).where(Pool.pool == name))
    return None if slots is None else int(slots)
