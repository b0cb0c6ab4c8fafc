"""Migrations of the ServiceManager's own IOTDB tables, on MariaDB and SQLite.

Databases of earlier versions are rebuilt from the DDL text those versions ran
(``tests/fixtures/iotdb_schemas/<commit>.<dialect>.sql``), never by importing old code.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from meccano.cli.main import main
from meccano.errors import MigrationError
from meccano.iotdb import schema_migrations
from meccano.iotdb.db import Iotdb
from meccano.iotdb.schema import OWN_TABLES, TABLES, ensure_schema
from meccano.settings.config import load_settings

SCHEMAS = Path(__file__).parents[1] / "fixtures" / "iotdb_schemas"
HEAD = "0003_notification_run_key"
REVISIONS = ["0001_baseline", "0002_drop_facts_stats_idx", HEAD]
_names = count()
ADDED_COLUMNS = {"Notification": ("dagId", "runId")}  # by 0003_notification_run_key

# one row in each of the ServiceManager's tables (DeviceStatisticsHour only where the version had it)
OWN_ROWS = {
    "Forecast_Day": "INSERT INTO Forecast_Day (device, sensor, forecastDate, value, degree) "
                    "VALUES ('A', 1, '2026-11-20', 12.5, 2)",
    "DeviceAlarm": "INSERT INTO DeviceAlarm (device, device_group, raisedAt, lastStatus, notifiedRaise) "
                   "VALUES ('A', 'g1', '2026-11-20 10:00:00', 'FAIL', 1)",
    "Notification": "INSERT INTO Notification (kind, subject, body, delivered) VALUES ('alarm', 's', 'b', 1)",
    "ExampleOutput": "INSERT INTO ExampleOutput (plugin, devices, runAt) VALUES ('example:1.0', 3, 'r1')",
    "ExportLedger": "INSERT INTO ExportLedger (tableName, day, state, runId, rowCount, purgedRows, manifest, "
                    "updatedAt) VALUES ('Facts', '2026-11-19', 'purged', 'run1', 10, 10, '{}', 'now')",
    "DeviceStatisticsHour": "INSERT INTO DeviceStatisticsHour (device, sensor, hourStart, n, s1, s2) "
                            "VALUES ('A', 1, '2026-11-20 10:00:00', 2, 30, 500)",
}
GATEWAY_ROWS = [
    "INSERT INTO Registration (device, device_group) VALUES ('A', 'g1')",
    "INSERT INTO Facts (channel, year, month, day, week_day, hour, minute, second, device_group, device, sensor, "
    "data) VALUES ('c', 2026, 11, 20, 5, 10, 0, 0, 'g1', 'A', 1, 15)",
    "INSERT INTO Messages (device, message) VALUES ('A', 'hello')",
]


@pytest.fixture(params=["mariadb", "sqlite"])
def new_db(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           ) -> Iterator[Callable[[], Iotdb]]:
    """``new_db()``: an empty IOTDB (MariaDB or SQLite), also made the configured one (the command line's)."""
    made: list[tuple[Iotdb, str]] = []

    def make() -> Iotdb:
        name = f"MIG_{os.getpid()}_{next(_names)}"
        if request.param == "mariadb":
            server = request.getfixturevalue("mariadb")
            server.create_database(name)
            monkeypatch.setenv("AIRFLOW_CONN_MECCANO_IOTDB", server.uri(name))
        else:
            monkeypatch.delenv("AIRFLOW_CONN_MECCANO_IOTDB", raising=False)
            monkeypatch.setenv("MECCANO_IOTDB_SQLITE", str(tmp_path / f"{name}.sqlite"))
        db = Iotdb.from_settings(load_settings())
        made.append((db, name))
        return db

    yield make
    for db, name in made:
        db.dispose()
        if request.param == "mariadb":
            request.getfixturevalue("mariadb").sql(f"DROP DATABASE IF EXISTS `{name}`")


def build_from_fixture(db: Iotdb, version: str) -> None:
    """The database an earlier version's ``ensure_schema`` left, from the DDL text it ran."""
    lines = (SCHEMAS / f"{version}.{db.dialect}.sql").read_text().splitlines()
    body = "\n".join(line for line in lines if not line.startswith("--"))
    for statement in filter(None, (s.strip() for s in body.split(";"))):
        db.execute(statement)


def tables(db: Iotdb) -> set[str]:
    from sqlalchemy import inspect

    return set(inspect(db.engine).get_table_names())


def definitions(db: Iotdb, names: list[str] | tuple[str, ...]) -> dict[str, list[str]]:
    """Each table's definition with its indexes, one normalized item per line (MySQL: SHOW CREATE TABLE, without
    the AUTO_INCREMENT counter, which rows move) or per object (SQLite: sqlite_master), sorted."""
    found = {}
    for name in names:
        if db.dialect == "mysql":
            create = db.query(f"SHOW CREATE TABLE `{name}`")[0]["Create Table"]
            items = [re.sub(r" AUTO_INCREMENT=\d+", "", line.strip().rstrip(",")) for line in create.splitlines()]
        else:
            items = [r["sql"] for r in db.query("SELECT sql FROM sqlite_master WHERE tbl_name = :t AND sql IS NOT NULL",
                                                t=name)]
        found[name] = sorted(items)
    return found


def rows(db: Iotdb, names: list[str] | tuple[str, ...]) -> dict[str, list[tuple[Any, ...]]]:
    """Each table's rows as (column, value) pairs; a column a later revision added, NULL in every row
    that was there before it, is left out, so rows kept across an upgrade compare equal."""
    out = {}
    for name in names:
        found = db.query(f"SELECT * FROM {name}")
        added = {c for c in ADDED_COLUMNS.get(name, ()) if all(r.get(c) is None for r in found)}
        out[name] = sorted(tuple((k, str(v)) for k, v in r.items() if k not in added) for r in found)
    return out


def seed(db: Iotdb) -> None:
    present = tables(db)
    for statement in [*GATEWAY_ROWS, *(sql for name, sql in OWN_ROWS.items() if name in present)]:
        db.execute(statement)


def test_a_fresh_database_reaches_head_and_a_second_run_applies_nothing(new_db):
    db = new_db()
    said: list[str] = []
    report = ensure_schema(db, say=said.append)
    assert report.migrations == REVISIONS and schema_migrations.current_revision(db) == HEAD
    assert tables(db) == {*TABLES, *OWN_TABLES, schema_migrations.VERSION_TABLE}
    applying = [line for line in said if line.startswith("applying")]
    assert applying[0].startswith("applying 0001_baseline (1 of 3): the ServiceManager's tables as earlier versions")
    assert applying[1].startswith("applying 0002_drop_facts_stats_idx (2 of 3): drop Facts_stats_idx")
    assert applying[2].startswith(f"applying {HEAD} (3 of 3): Notification: dagId and runId columns")
    assert len(applying) == 3
    assert "  added column Notification.dagId" in said and "  added column Notification.runId" in said
    assert "  created table Forecast_Day" in said and "created table Facts" in said
    assert "alembic_version" not in tables(db)  # Airflow's version table name stays free
    again = ensure_schema(db)
    assert again.migrations == [] and again.created == []


@pytest.mark.parametrize("version", ["761f4c5", "fff2004", "main"])
def test_a_database_of_an_earlier_version_upgrades_with_its_rows(new_db, version):
    """761f4c5: before DeviceStatisticsHour, with Facts_stats_idx; fff2004 and main: no version table yet."""
    old = new_db()
    build_from_fixture(old, version)
    seed(old)
    own_before = [t for t in OWN_TABLES if t in tables(old)]
    gateway, data = definitions(old, tuple(TABLES)), rows(old, [*TABLES, *own_before])
    said: list[str] = []
    report = ensure_schema(old, say=said.append)

    assert report.migrations == REVISIONS and schema_migrations.current_revision(old) == HEAD and report.created == []
    assert rows(old, [*TABLES, *own_before]) == data  # every row kept
    if version == "761f4c5":
        assert "  created table DeviceStatisticsHour" in said and "  dropped index Facts_stats_idx on Facts" in said
        gateway["Facts"] = [item for item in gateway["Facts"] if "Facts_stats_idx" not in item]
    else:
        assert "  adopted table DeviceStatisticsHour (it was there; rows kept)" in said
        assert "  Facts_stats_idx: not there, nothing to drop" in said
    assert definitions(old, tuple(TABLES)) == gateway  # the gateway's tables untouched (but the leftover index)
    fresh = new_db()
    ensure_schema(fresh)
    assert definitions(old, OWN_TABLES) == definitions(fresh, OWN_TABLES)  # as if created now


def test_downgrade_one_step_check_names_it_then_upgrade_again(new_db, airflow_pool, capsys):
    db = new_db()
    ensure_schema(db)
    seed(db)
    gateway, data = definitions(db, tuple(TABLES)), rows(db, [*TABLES, *OWN_TABLES])

    assert main(["db", "downgrade", "--yes"]) == 0
    out = capsys.readouterr().out
    assert f"reverting {HEAD} -> 0002_drop_facts_stats_idx" in out and "dropped column Notification.runId" in out
    assert schema_migrations.current_revision(db) == "0002_drop_facts_stats_idx"
    assert main(["db", "downgrade", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "reverting 0002_drop_facts_stats_idx -> 0001_baseline" in out and "Facts_stats_idx is not re-created" in out
    assert schema_migrations.current_revision(db) == "0001_baseline"

    assert main(["db", "check"]) == 1
    out = capsys.readouterr().out
    assert "PENDING migration 0002_drop_facts_stats_idx: drop Facts_stats_idx" in out
    assert f"PENDING migration {HEAD}: Notification: dagId and runId columns" in out
    assert "2 migration(s) pending; run: python -m meccano db upgrade" in out

    assert main(["db", "downgrade", "--yes"]) == 1  # below the baseline: it would drop our tables with their rows
    err = capsys.readouterr().err
    assert "migration error: 0001_baseline is the first revision" in err and "Nothing was changed" in err
    assert schema_migrations.current_revision(db) == "0001_baseline"

    assert main(["db", "upgrade"]) == 0
    out = capsys.readouterr().out
    assert f"  applying {HEAD} (2 of 2): " in out and "2 migration(s) applied" in out
    assert main(["db", "check"]) == 0
    assert f"ServiceManager tables at revision {HEAD} (head)" in capsys.readouterr().out
    assert rows(db, [*TABLES, *OWN_TABLES]) == data and definitions(db, tuple(TABLES)) == gateway


def test_the_guard_refuses_any_change_to_a_gateway_table(new_db):
    db = new_db()
    ensure_schema(db)
    before = definitions(db, tuple(TABLES))
    refused = ["DROP TABLE Facts", "ALTER TABLE Registration ADD COLUMN x INT", "CREATE INDEX x_idx ON Facts (device)",
               "DELETE FROM Messages",
               "INSERT INTO `User` (name, email, role, password, salt) VALUES ('a','b','c','d','e')"]
    for statement in refused:
        with (db.engine.connect() as con, schema_migrations.gateway_guard(con, ("Facts_stats_idx",)),
              pytest.raises(MigrationError, match="refused: a migration may not change the gateway's table")):
            con.execute(text(statement))
    with db.begin() as con, schema_migrations.gateway_guard(con):  # our own tables, and reading the gateway's, pass
        con.execute(text("CREATE INDEX DeviceStatisticsHour_x ON DeviceStatisticsHour (n)"))
        con.execute(text("SELECT COUNT(*) FROM Facts"))
    assert definitions(db, tuple(TABLES)) == before


def test_a_table_of_the_same_name_that_is_not_ours_is_not_adopted(new_db):
    db = new_db()
    db.execute("CREATE TABLE Notification (ID INT, note VARCHAR(10))")
    before = definitions(db, ("Notification",))
    with pytest.raises(MigrationError, match=r"table Notification exists but lacks the column\(s\) kind, subject"):
        ensure_schema(db)
    assert schema_migrations.current_revision(db) is None
    assert definitions(db, ("Notification",)) == before
    with pytest.raises(MigrationError, match="RENAME TABLE Notification TO Notification_old"):
        ensure_schema(db)  # and again: nothing stamped, nothing of it changed


def test_a_revision_this_version_does_not_know_is_named(new_db):
    db = new_db()
    ensure_schema(db)
    db.execute(f"UPDATE {schema_migrations.VERSION_TABLE} SET version_num = '0099_from_the_future'")
    lines: list[str] = []
    assert schema_migrations.migration_command(db, "check", lines.append) == 1
    assert "'0099_from_the_future', which this version of the ServiceManager does not know" in lines[0]
    with pytest.raises(MigrationError, match="0099_from_the_future"):
        ensure_schema(db)
    with pytest.raises(MigrationError, match="0099_from_the_future"):
        schema_migrations.downgrade(db)


def test_the_guard_knows_every_gateway_table_and_the_revisions_ship_with_the_package():
    import tomllib

    assert set(schema_migrations.GATEWAY_TABLES) == set(TABLES) and not set(OWN_TABLES) & set(TABLES)
    root = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package = root / "include" / "meccano" / "iotdb"
    shipped = {path for pattern in patterns["meccano.iotdb"] for path in package.glob(pattern)}
    revisions = set(schema_migrations.MIGRATIONS_DIR.glob("versions/*.py"))
    assert len(revisions) == len(REVISIONS) and revisions <= shipped  # a non-editable install (the image) has them
    assert [s.revision for s in reversed(list(schema_migrations.scripts().walk_revisions()))] == REVISIONS


def test_one_migration_at_a_time(new_db):
    """An upgrade while another run holds the lock waits, saying so; when the wait runs out it fails and applies
    nothing; once the lock is released it proceeds."""
    db = new_db()
    first = Iotdb.from_settings(load_settings())  # another process's engine on the same IOTDB
    said: list[str] = []
    with schema_migrations.migration_lock(first):
        busy = re.escape("held the IOTDB's migration lock for 0.5 s; nothing was applied")
        with pytest.raises(MigrationError, match=busy):
            schema_migrations.upgrade(db, said.append, lock_wait=0.5)
        assert schema_migrations.current_revision(db) is None and schema_migrations.VERSION_TABLE not in tables(db)
        assert any(line.startswith("another migration holds the lock") for line in said), said

        waited: list[str] = []
        applied: list[str] = []
        second = threading.Thread(target=lambda: applied.extend(schema_migrations.upgrade(db, waited.append)))
        second.start()
        while not any(line.startswith("another migration holds the lock") for line in waited):
            assert second.is_alive(), waited
            second.join(0.05)
        assert schema_migrations.current_revision(db) is None  # still waiting: nothing ran
    second.join()
    assert applied == REVISIONS, waited
    assert schema_migrations.current_revision(db) == HEAD
    first.dispose()
