"""Progress of a long DDL statement (``db partition --yes``) through performance_schema stage events, the source
MySQL 8.4 (compose's IOTDB) offers: tested on a MariaDB started with ``performance_schema=ON``, which has the
same ``events_stages_current`` (WORK_COMPLETED of WORK_ESTIMATED rows of ``copy to tmp table``). No MySQL server
runs here; the MariaDB-only source (PROCESSLIST's PROGRESS) is tested in test_partitions.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from itertools import count
from pathlib import Path

import pytest

from meccano.iotdb import ddl_progress
from meccano.iotdb import partition_ops as ops
from meccano.iotdb.db import Iotdb
from meccano.iotdb.schema import ensure_schema
from meccano.settings.config import load_settings
from tests.services.mariadb import USER, MariaDB, start_mariadb
from tests.support.export import day_facts, insert_facts

pytestmark = pytest.mark.services
_names = count()


@pytest.fixture(scope="module")
def mariadb_ps(service_dir: Path) -> Iterator[MariaDB]:
    """A MariaDB of its own with performance_schema on (it is off by default, and only a start option turns it
    on); its stage consumers are off, as on a MySQL 8.4 server out of the box."""
    base = service_dir / f"mariadb-ps-{os.getpid()}"
    (base / "tmp").mkdir(parents=True)  # its own temporary tables' folder, out of the shared /tmp's churn
    server = start_mariadb(base, ["--performance-schema=ON", f"--tmpdir={base / 'tmp'}"])
    yield server
    server.stop()


@pytest.fixture
def big_facts(mariadb_ps: MariaDB, monkeypatch: pytest.MonkeyPatch) -> Iterator[Iotdb]:
    """An IOTDB there with 256,000 Facts rows: an ALTER that lasts long enough to be watched."""
    name = f"PS_{os.getpid()}_{next(_names)}"
    mariadb_ps.create_database(name)
    monkeypatch.setenv("AIRFLOW_CONN_MECCANO_IOTDB", mariadb_ps.uri(name))
    db = Iotdb.from_settings(load_settings())
    ensure_schema(db)
    insert_facts(db, day_facts("2024-03-01", 2000))
    for _ in range(7):
        db.execute("INSERT INTO Facts SELECT * FROM Facts")
    yield db
    db.dispose()
    mariadb_ps.sql(f"DROP DATABASE IF EXISTS `{name}`")


def _grant(server: MariaDB, statement: str) -> None:
    for host in ("127.0.0.1", "localhost"):
        server.sql(statement.format(user=f"'{USER}'@'{host}'"))


def _consumer(server: MariaDB) -> str:
    return server.sql("SELECT ENABLED FROM performance_schema.setup_consumers WHERE NAME = 'events_stages_current'")


def test_the_flavour_is_read_from_the_server(big_facts: Iotdb, sqlite_iotdb: Iotdb) -> None:
    assert ddl_progress.server_flavour(big_facts) == "mariadb"
    assert ddl_progress.server_flavour(sqlite_iotdb) == "sqlite"


def test_a_conversion_reports_stage_events_and_puts_the_consumer_back(big_facts: Iotdb, mariadb_ps: MariaDB) -> None:
    _grant(mariadb_ps, "GRANT SELECT ON performance_schema.* TO {user}")
    _grant(mariadb_ps, "GRANT UPDATE ON performance_schema.setup_consumers TO {user}")
    try:
        assert _consumer(mariadb_ps).strip() == "NO"
        lines: list[str] = []
        ops.convert(big_facts, ops.plan_conversion(big_facts, "Facts", "creationDate", date(2024, 3, 14), ahead=1),
                    out=lines.append, every=0.05)
        staged = [line for line in lines if " rows)" in line]
        assert staged, lines
        assert all(line.startswith("converting Facts: ") for line in lines), lines
        assert any("copy to tmp table: " in line and "% (" in line and " of 256,000 rows)" in line
                   for line in staged), staged
        assert _consumer(mariadb_ps).strip() == "NO"  # turned on for the statement only
    finally:
        _grant(mariadb_ps, "REVOKE UPDATE ON performance_schema.setup_consumers FROM {user}")
        _grant(mariadb_ps, "REVOKE SELECT ON performance_schema.* FROM {user}")


def test_without_the_right_to_turn_them_on_it_says_how_and_falls_back(big_facts: Iotdb) -> None:
    lines: list[str] = []
    ops.convert(big_facts, ops.plan_conversion(big_facts, "Facts", "creationDate", date(2024, 3, 14), ahead=1),
                out=lines.append, every=0.05)
    assert lines[0].startswith("progress: performance_schema stage events are off") and "setup_consumers" in lines[0]
    rest = lines[1:]
    assert rest and any(" of " in line and "%" in line for line in rest), lines  # MariaDB's PROCESSLIST progress
