"""Which connection the ServiceManager uses, and where it comes from.

Airflow-native first: an Airflow connection named ``iotdb.connId`` (default
``meccano_iotdb``) or ``aws.connId`` (default ``aws_default``) wins, wherever it is
defined (metadata DB, ``AIRFLOW_CONN_*`` variable, a secrets backend). Otherwise a
connection is built from the configuration (``config.yml`` + original variables).
Never call this at DAG parse time: it may reach the metadata database.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING

from meccano.settings.config import Settings

if TYPE_CHECKING:
    from airflow.sdk import Connection


def airflow_connection(conn_id: str) -> Connection | None:
    """The Airflow connection ``conn_id``, or None when it is not defined."""
    from airflow.sdk import BaseHook  # lazy: airflow.sdk costs 1039 ms at import (python -X importtime)

    # lazy: airflow.sdk.exceptions costs 1265 ms at import (python -X importtime)
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def _mask(*values: str) -> None:
    from airflow.sdk.log import mask_secret  # lazy: airflow.sdk.log costs 1040 ms at import (python -X importtime)

    for value in values:
        if value:
            mask_secret(value)


def iotdb_connection(settings: Settings) -> Connection:
    """The IOTDB connection: the Airflow one if defined, else built from settings."""
    from airflow.sdk import Connection  # lazy: airflow.sdk costs 1039 ms at import (python -X importtime)

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


def aws_endpoint(settings: Settings) -> str:
    """``AWS_ENDPOINTURL`` with its scheme: an endpoint written without one (``host:port``, as the
    original's SDK took it) gets ``https://`` when ``AWS_SSLENABLED`` is true, ``http://`` when false."""
    url = settings.aws.endpoint_url.strip()
    if url and "://" not in url:
        url = ("https://" if settings.aws.ssl_enabled else "http://") + url
    return url


def aws_extra(settings: Settings) -> dict[str, object]:
    """The connection extra built from ``aws:`` / ``AWS_*`` (region, endpoint, TLS, path-style S3)."""
    a = settings.aws
    extra: dict[str, object] = {"region_name": a.region}
    endpoint = aws_endpoint(settings)
    if endpoint:
        extra["endpoint_url"] = endpoint
        # S3-compatible servers (SeaweedFS, MinIO) answer path-style requests only.
        extra["config_kwargs"] = {"s3": {"addressing_style": "path"}}
        if endpoint.startswith("https://") and not a.ssl_enabled:
            # The original's sslEnabled=false: no TLS check (a self-signed gateway-side endpoint).
            extra["verify"] = False
    return extra


def aws_connection(settings: Settings) -> Connection:
    """The AWS connection: the Airflow one if defined, else built from settings."""
    from airflow.sdk import Connection  # lazy: airflow.sdk costs 1039 ms at import (python -X importtime)

    conn = airflow_connection(settings.aws.conn_id)
    if conn is not None:
        _mask(conn.password or "")
        return conn
    a = settings.aws
    _mask(a.secret_access_key.get())
    return Connection(
        conn_id=a.conn_id, conn_type="aws", login=a.access_key_id or None,
        password=a.secret_access_key.get() or None, extra=json.dumps(aws_extra(settings)),
    )


def aws_conn_id(settings: Settings) -> str:
    """The one AWS connection every AWS client of the project uses (S3 export, verify and purge,
    the report store, SNS), by name.

    An Airflow connection ``aws.connId`` (metadata DB, ``AIRFLOW_CONN_*`` or a secrets backend) is
    used as it is. Otherwise the connection built from the configuration (``AWS_*``) is announced
    to this process the documented Airflow way, an ``AIRFLOW_CONN_<ID>`` variable, under an id that
    carries a fingerprint of its values (``aws_default_cfg_<12 hex>``): hooks, ``ObjectStoragePath``
    and notifiers that take only a connection id all see the same credentials, and a changed
    configuration is a new id, so nothing Airflow caches per connection id (its object-storage
    filesystems) can serve the old keys.
    """
    if airflow_connection(settings.aws.conn_id) is not None:
        return settings.aws.conn_id
    a = settings.aws
    _mask(a.secret_access_key.get())
    value = json.dumps({
        "conn_type": "aws", "login": a.access_key_id or None, "password": a.secret_access_key.get() or None,
        "extra": aws_extra(settings),
    }, sort_keys=True)
    conn_id = f"{settings.aws.conn_id}_cfg_{hashlib.sha256(value.encode()).hexdigest()[:12]}"
    os.environ["AIRFLOW_CONN_" + conn_id.upper()] = value
    return conn_id


def aws_if_configured(settings: Settings) -> Connection | None:
    """The AWS connection when there is one (Airflow's) or the settings hold keys; else None."""
    if airflow_connection(settings.aws.conn_id) is not None or settings.aws.access_key_id \
            or settings.aws.secret_access_key or settings.aws.topic_arn:
        return aws_connection(settings)
    return None
