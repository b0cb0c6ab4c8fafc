"""The IOTDB schema: the gateway's tables (never altered), then the ServiceManager's own (migrations).

``ensure_schema`` is idempotent: it creates only what of the gateway's schema is missing (tables,
views, the indexes export, purge and the statistics need, such as ``Facts.creationDate``), then
applies the pending migrations of the ServiceManager's own tables (``meccano.iotdb.schema_migrations``), so
every set-up path ends at the head revision. The gateway's columns and types are kept exactly so
that the ServiceManager can run against the gateway's existing database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from meccano.iotdb.db import Iotdb
from meccano.iotdb.schema_migrations import PlannedStep, Say, plan_upgrade, quiet, upgrade

log = logging.getLogger(__name__)

_AUTO_PK = {"mysql": "INT NOT NULL AUTO_INCREMENT PRIMARY KEY", "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT"}
_TAIL = {"mysql": " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4", "sqlite": ""}

# The gateway's tables: name -> DDL with {pk} and {tail} placeholders. Created here when missing (the demo,
# the tests, a gateway not deployed yet), never altered. The ServiceManager's own tables are made by the
# migrations (meccano.iotdb.schema_migrations, migrations/versions/): OWN_TABLES are those of the head revision.
TABLES: dict[str, str] = {
    "Registration": """CREATE TABLE Registration (
        device VARCHAR(20) NOT NULL PRIMARY KEY,
        device_group VARCHAR(20) NULL,
        registrationDate TIMESTAMP NULL,
        creationDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
        memo VARCHAR(100) NULL,
        type VARCHAR(20) NULL){tail}""",
    "Announcement": """CREATE TABLE Announcement (
        device VARCHAR(20) NOT NULL PRIMARY KEY,
        lastAnnouncementDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP){tail}""",
    "Facts": """CREATE TABLE Facts (
        channel VARCHAR(50) NOT NULL,
        year INT NOT NULL, month INT NOT NULL, day INT NOT NULL, week_day INT NOT NULL,
        hour INT NOT NULL, minute INT NOT NULL, second INT NOT NULL,
        device_group VARCHAR(20) NOT NULL,
        device VARCHAR(20) NOT NULL,
        sensor INT NOT NULL,
        data INT NOT NULL,
        creationDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP){tail}""",
    "Messages": """CREATE TABLE Messages (
        ID {pk},
        device VARCHAR(20) NOT NULL,
        sender VARCHAR(20) NULL,
        delivery_type VARCHAR(10) NOT NULL DEFAULT 'TRANSIENT',
        message VARCHAR(255) NOT NULL,
        readDate TIMESTAMP NULL,
        creationDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP){tail}""",
    "DeviceStatistics": """CREATE TABLE DeviceStatistics (
        device VARCHAR(20) NOT NULL,
        sensor INT NOT NULL,
        average DOUBLE NOT NULL,
        deviation DOUBLE NOT NULL,
        error DOUBLE NOT NULL,
        creationDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP){tail}""",
    "DeviceHistoryStatus": """CREATE TABLE DeviceHistoryStatus (
        status VARCHAR(20) NOT NULL,
        numberOfDevices INT NOT NULL,
        creationDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP){tail}""",
    "User": """CREATE TABLE User (
        ID {pk},
        name VARCHAR(100) NOT NULL,
        email VARCHAR(100) NOT NULL,
        role VARCHAR(20) NOT NULL,
        password VARCHAR(255) NOT NULL,
        salt VARCHAR(255) NOT NULL){tail}""",
}

OWN_TABLES = ("Forecast_Day", "DeviceAlarm", "Notification", "ExampleOutput", "ExportLedger", "DeviceStatisticsHour")

# (table, index name, DDL): indexes on the gateway's tables the ServiceManager needs
INDEXES: tuple[tuple[str, str, str], ...] = (
    ("Facts", "Facts_idx", "CREATE INDEX Facts_idx ON Facts "
     "(channel, year, month, day, hour, minute, second, device)"),
    ("Facts", "Facts_creationDate_idx", "CREATE INDEX Facts_creationDate_idx ON Facts (creationDate)"),
    # sensorStatistics re-aggregates only recent hours through Facts_creationDate_idx. Facts_stats_idx,
    # which older versions created here, is dropped by the migration 0002_drop_facts_stats_idx.
    ("DeviceHistoryStatus", "DeviceHistoryStatus_date_idx",
     "CREATE INDEX DeviceHistoryStatus_date_idx ON DeviceHistoryStatus (creationDate)"),
    ("DeviceStatistics", "DeviceStatistics_idx",
     "CREATE INDEX DeviceStatistics_idx ON DeviceStatistics (device, sensor, creationDate)"),
    # S3 export/purge finds and deletes day partitions by creationDate.
    ("DeviceStatistics", "DeviceStatistics_date_idx",
     "CREATE INDEX DeviceStatistics_date_idx ON DeviceStatistics (creationDate)"),
)

# The gateway's views (MySQL only: they use TIMESTAMPDIFF and CURDATE()).
MYSQL_VIEWS: dict[str, str] = {
    "DeviceStatus": """CREATE VIEW DeviceStatus AS
        SELECT r.device, r.device_group, a.lastAnnouncementDate,
          CASE WHEN r.device_group IS NULL THEN 'WAITING_APPROVE'
               WHEN TIMESTAMPDIFF(MINUTE, a.lastAnnouncementDate, NOW()) <= 5 THEN 'NORMAL'
               WHEN TIMESTAMPDIFF(MINUTE, a.lastAnnouncementDate, NOW()) <= 15 THEN 'WARNING'
               ELSE 'FAIL' END AS status
        FROM Registration r LEFT JOIN Announcement a ON r.device = a.device""",
    "DeviceActivity": """CREATE VIEW DeviceActivity AS
        SELECT device, hour, COUNT(*) AS activity FROM Facts
        WHERE year = YEAR(CURDATE()) AND month = MONTH(CURDATE()) AND day = DAYOFMONTH(CURDATE())
        GROUP BY device, hour""",
}

CREATION_DATE_INDEX = "Facts_creationDate_idx"


@dataclass
class SchemaReport:
    created: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    migrations: list[str] = field(default_factory=list)  # the revisions applied, oldest first


def table_ddl(name: str, dialect: str) -> str:
    return TABLES[name].format(pk=_AUTO_PK[dialect], tail=_TAIL[dialect])


def inspect_schema(db: Iotdb) -> tuple[set[str], dict[str, set[str]], set[str]]:
    """Tables, index names per table, and views present in the IOTDB."""
    from sqlalchemy import inspect  # lazy: sqlalchemy costs 129 ms at import (python -X importtime)

    insp = inspect(db.engine)
    tables = set(insp.get_table_names())
    indexes = {t: {i["name"] for i in insp.get_indexes(t) if i["name"]} for t in tables}
    views = set(insp.get_view_names())
    return tables, indexes, views


def creation_date_index_warning(db: Iotdb) -> str | None:
    """A loud warning when ``Facts`` has no index on ``creationDate`` (export/purge scan)."""
    from sqlalchemy import inspect  # lazy: sqlalchemy costs 129 ms at import (python -X importtime)

    insp = inspect(db.engine)
    if "Facts" not in insp.get_table_names():
        return None
    for index in insp.get_indexes("Facts"):
        if index["column_names"] and index["column_names"][0] == "creationDate":
            return None
    return ("WARNING: Facts has no index on creationDate: export and purge will scan the whole "
            "table and lock the gateway's inserts. Run `python -m meccano db upgrade` to add "
            f"{CREATION_DATE_INDEX}.")


def schema_items(db: Iotdb, create_index: bool = True) -> list[tuple[str, bool, str]]:
    """``(item, present, DDL)`` of each gateway table, index and view the ServiceManager needs."""
    tables, indexes, views = inspect_schema(db)
    wanted = [(f"table {name}", name in tables, table_ddl(name, db.dialect)) for name in TABLES]
    wanted += [(f"index {index}", index in indexes.get(table, set()), ddl) for table, index, ddl in INDEXES
               if create_index or index != CREATION_DATE_INDEX]
    if db.dialect == "mysql":
        wanted += [(f"view {name}", name in views or name in tables, ddl) for name, ddl in MYSQL_VIEWS.items()]
    return wanted


def plan_schema(db: Iotdb, create_index: bool = True) -> tuple[list[tuple[str, str]], list[PlannedStep]]:
    """What :func:`ensure_schema` would do, nothing done: the missing items with their DDL, then the
    pending revisions with their statements."""
    missing = [(item, ddl) for item, there, ddl in schema_items(db, create_index) if not there]
    return missing, plan_upgrade(db, after_planned_steps=bool(missing))


def ensure_schema(db: Iotdb, *, create_index: bool = True, say: Say = quiet) -> SchemaReport:
    """Create the gateway's missing tables, indexes and views (never drop or alter them), then apply the
    pending migrations of the ServiceManager's own tables. ``say`` gets one line per step as it happens."""
    from sqlalchemy import text  # lazy: sqlalchemy costs 129 ms at import (python -X importtime)

    report = SchemaReport()
    for item, there, ddl in schema_items(db, create_index):
        if there:
            report.present.append(item)
            continue
        with db.begin() as con:
            con.execute(text(ddl))
        report.created.append(item)
        say(f"created {item}")
    report.migrations = upgrade(db, say)
    warning = creation_date_index_warning(db)
    if warning:
        log.warning(warning)
        report.warnings.append(warning)
    return report
