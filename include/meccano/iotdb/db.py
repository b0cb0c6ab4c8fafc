"""Access to the IOTDB through the Airflow connection.

MySQL/MariaDB go through the mysql provider's ``MySqlHook`` (it owns the connection
details: SSL, charset, client); SQLite is the embedded default of the demo. Both are
wrapped in a SQLAlchemy engine so shared code writes one parameterised query
(``:name`` binds) that runs on either dialect.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from meccano.settings.config import Settings
from meccano.settings.connections import iotdb_connection

if TYPE_CHECKING:
    from airflow.sdk import Connection
    from sqlalchemy.engine import Connection as SAConnection
    from sqlalchemy.engine import Engine


class Iotdb:
    """One IOTDB: a SQLAlchemy engine over the hook's DB-API connections."""

    def __init__(self, conn: Connection) -> None:
        from sqlalchemy import create_engine  # lazy: sqlalchemy costs 129 ms at import (python -X importtime)
        from sqlalchemy.pool import NullPool  # lazy: sqlalchemy.pool costs 120 ms at import (python -X importtime)

        self.conn_id = conn.conn_id
        if conn.conn_type == "sqlite":
            path = conn.host or ":memory:"
            self.dialect = "sqlite"
            self.hook = None
            self.sqlite_path = path

            def creator() -> sqlite3.Connection:
                con = sqlite3.connect(path, timeout=30, check_same_thread=False)
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA busy_timeout=30000")
                return con

            self.engine: Engine = create_engine("sqlite://", creator=creator, poolclass=NullPool)
        elif conn.conn_type in ("mysql", "mariadb"):
            # lazy: airflow.providers.mysql.hooks.mysql costs 1428 ms at import (python -X importtime)
            from airflow.providers.mysql.hooks.mysql import MySqlHook

            self.dialect = "mysql"
            self.hook = MySqlHook(connection=conn)
            self.sqlite_path = ""
            self.engine = create_engine("mysql+mysqldb://", creator=self.hook.get_conn, poolclass=NullPool)
        else:
            raise ValueError(
                f"connection {conn.conn_id!r} has type {conn.conn_type!r}; the IOTDB needs a "
                "'mysql' or 'sqlite' connection"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> Iotdb:
        return cls(iotdb_connection(settings))

    def __repr__(self) -> str:  # never the URI: it would carry the password
        return f"Iotdb(conn_id={self.conn_id!r}, dialect={self.dialect!r})"

    @contextmanager
    def begin(self) -> Iterator[SAConnection]:
        """A connection in one transaction, committed on success."""
        with self.engine.begin() as con:
            yield con

    def query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        from sqlalchemy import text  # lazy: sqlalchemy costs 129 ms at import (python -X importtime)

        with self.engine.connect() as con:
            return [dict(r._mapping) for r in con.execute(text(sql), params)]

    def scalar(self, sql: str, **params: Any) -> Any:
        from sqlalchemy import text  # lazy: sqlalchemy costs 129 ms at import (python -X importtime)

        with self.engine.connect() as con:
            return con.execute(text(sql), params).scalar()

    def execute(self, sql: str, **params: Any) -> int:
        """Run one statement in its own transaction; returns the affected row count."""
        from sqlalchemy import text  # lazy: sqlalchemy costs 129 ms at import (python -X importtime)

        with self.engine.begin() as con:
            return con.execute(text(sql), params).rowcount

    def dispose(self) -> None:
        self.engine.dispose()
