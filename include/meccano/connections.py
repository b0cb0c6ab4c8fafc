"""Which connection the ServiceManager uses, and where it comes from.

Airflow-native first: an Airflow connection named ``iotdb.connId`` (default
``meccano_iotdb``) or ``aws.connId`` (default ``aws_default``) wins, wherever it is
defined (metadata DB, ``AIRFLOW_CONN_*`` variable, a secrets backend). Otherwise a
connection is built from the configuration (``config.yml`` + original variables).
Never call this at DAG parse time: it may reach the metadata database.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from meccano.config import Settings

if TYPE_CHECKING:
    from airflow.sdk import Connection


def airflow_connection(conn_id: str) -> Connection | None:
    """The Airflow connection ``conn_id``, or None when it is not defined."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def _mask(*values: str) -> None:
    from airflow.sdk.log import mask_secret

    for value in values:
        if value:
            mask_secret(value)


def iotdb_connection(settings: Settings) -> Connection:
    """The IOTDB connection: the Airflow one if defined, else built from settings."""
    from airflow.sdk import Connection

    conn = airflow_connection(settings.iotdb.conn_id)
    if conn is not None:
        _mask(conn.password or "")
        return conn
    if settings.iotdb.sqlite_path:
        return Connection(conn_id=settings.iotdb.conn_id, conn_type="sqlite", host=settings.iotdb.sqlite_path)
    m = settings.mysql
    _mask(m.password.get())
    return Connection(
        conn_id=settings.iotdb.conn_id, conn_type="mysql", host=m.host, port=m.port,
        login=m.user, password=m.password.get(), schema=m.database,
    )


def aws_connection(settings: Settings) -> Connection:
    """The AWS connection: the Airflow one if defined, else built from settings."""
    from airflow.sdk import Connection

    conn = airflow_connection(settings.aws.conn_id)
    if conn is not None:
        _mask(conn.password or "")
        return conn
    a = settings.aws
    _mask(a.secret_access_key.get())
    extra: dict[str, object] = {"region_name": a.region}
    if a.endpoint_url:
        extra["endpoint_url"] = a.endpoint_url
    if not a.ssl_enabled and a.endpoint_url.startswith("http://"):
        extra["verify"] = False
    return Connection(
        conn_id=a.conn_id, conn_type="aws", login=a.access_key_id or None,
        password=a.secret_access_key.get() or None, extra=json.dumps(extra),
    )
