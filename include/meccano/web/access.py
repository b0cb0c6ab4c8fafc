"""Who may call what: an Airflow login everywhere; for the listing also the console token
or an allow-listed client address (see :mod:`meccano.web.settings`). A logged-in user sees only the
plugins, reports and report files of the DAGs Airflow's auth manager lets them read."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Annotated, Protocol, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.security import HTTPAuthorizationCredentials

from meccano.web.airflow_internal import bearer, readable_dag_ids, require_user
from meccano.web.context import Context
from meccano.web.settings import WebSettings

TOKEN_HEADER = "X-Meccano-Token"


class _DagRow(Protocol):
    @property
    def dag_id(self) -> str: ...


RowT = TypeVar("RowT", bound=_DagRow)


def console_credential(request: Request, web: WebSettings, credentials: HTTPAuthorizationCredentials | None) -> bool:
    """True when the request carries the console token (``X-Meccano-Token`` or ``Authorization: Bearer``,
    compared in constant time) or comes from an allow-listed address."""
    token = web.console_token.get()
    offered = request.headers.get(TOKEN_HEADER) or (credentials.credentials if credentials else "")
    if token and offered and hmac.compare_digest(offered.encode(), token.encode()):
        return True
    if web.allow_list and request.client is not None:
        try:
            address = ipaddress.ip_address(request.client.host)
        except ValueError:
            address = None
        if address is not None and any(address in net for net in web.allow_list):
            return True
    return False


async def listing_access(request: Request, ctx: Context,
                         credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> object | None:
    """The console token, an allow-listed address (None: the console's credential, no Airflow user), or an
    Airflow login (its user)."""
    if console_credential(request, ctx.web, credentials):
        return None
    return await require_user(request, credentials)


User = Annotated[object, Depends(require_user)]
ListingUser = Annotated[object | None, Depends(listing_access)]


def visible_rows(rows: list[RowT], user: object | None) -> list[RowT]:
    """The rows whose DAG ``user`` may read, as Airflow's auth manager says (``is_authorized_dag``, GET); every
    row for the console's own credential (``user`` None)."""
    if user is None:
        return rows
    readable = readable_dag_ids(user, (row.dag_id for row in rows))
    return [row for row in rows if row.dag_id in readable]


def require_dag(user: object, dag_id: str) -> None:
    """404, as for a DAG that does not exist, unless ``user`` may read the DAG ``dag_id``."""
    if dag_id not in readable_dag_ids(user, [dag_id]):
        raise HTTPException(404, "not found")


def allow_console_origins(app: FastAPI, web: WebSettings) -> None:
    """CORS for the origins in ``corsOrigins`` (``MECCANO_WEB_CORS_ORIGINS``), none when empty: GET only, the
    bearer and console-token headers, no cookies. The same rule for the web view's app and the console's."""
    if web.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(web.cors_origins), allow_methods=["GET"],
                           allow_headers=["Authorization", TOKEN_HEADER], allow_credentials=False, max_age=600)
