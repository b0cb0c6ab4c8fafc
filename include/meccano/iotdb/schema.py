"""The IOTDB schema: the gateway's tables (never altered) plus the ServiceManager's own.

``ensure_schema`` is idempotent: it creates only what is missing (tables, views, the
``Facts.creationDate`` index export and purge need) and reports what it did.
The gateway's columns and types are kept exactly so that the ServiceManager can run
against the gateway's existing database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from meccano.iotdb.db import Iotdb

log = logging.getLogger(__name__)

_AUTO_PK = {"mysql": "INT NOT NULL AUTO_INCREMENT PRIMARY KEY", "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT"}
_TAIL = {"mysql": " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4", "sqlite": ""}

# name -> (owner, DDL with {pk} and {tail} placeholders)
TABLES: dict[str, tuple[str, str]] = {
    "Registration": ("gateway", """CREATE TABLE Registration (
        device VARCHAR(20) NOT NULL PRIMARY KEY,
        device_group VARCHAR(20) NULL,
        registrationDate TIMESTAMP NULL,
        creationDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
        memo VARCHAR(100) NULL,
        type VARCHAR(20) NULL){tail}"""),
    "Announcement": ("gateway", """CREATE TABLE Announcement (
        device VARCHAR(20) NOT NULL PRIMARY KEY,
        lastAnnouncementDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP){tail}"""),
    "Facts": ("gateway", """CREATE TABLE Facts (
        channel VARCHAR(50) NOT NULL,
        year INT NOT NULL, month INT NOT NULL, day INT NOT NULL, week_day INT NOT NULL,
        hour INT NOT NULL, minute INT NOT NULL, second INT NOT NULL,
        device_group VARCHAR(20) NOT NULL,
        device VARCHAR(20) NOT NULL,
        sensor INT NOT NULL,
        data INT NOT NULL,
        creationDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP){tail}"""),
    "Messages": ("gateway", """CREATE TABLE Messages (
        ID {pk},
        device VARCHAR(20) NOT NULL,
        sender VARCHAR(20) NULL,
        delivery_type VARCHAR(10) NOT NULL DEFAULT 'TRANSIENT',
        message VARCHAR(255) NOT NULL,
        readDate TIMESTAMP NULL,
        creationDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP){tail}"""),
    "DeviceStatistics": ("gateway", """CREATE TABLE DeviceStatistics (
        device VARCHAR(20) NOT NULL,
        sensor INT NOT NULL,
        average DOUBLE NOT NULL,
        deviation DOUBLE NOT NULL,
        error DOUBLE NOT NULL,
        creationDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP){tail}"""),
    "DeviceHistoryStatus": ("gateway", """CREATE TABLE DeviceHistoryStatus (
        status VARCHAR(20) NOT NULL,
        numberOfDevices INT NOT NULL,
        creationDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP){tail}"""),
    "User": ("gateway", """CREATE TABLE User (
        ID {pk},
        name VARCHAR(100) NOT NULL,
        email VARCHAR(100) NOT NULL,
        role VARCHAR(20) NOT NULL,
        password VARCHAR(255) NOT NULL,
        salt VARCHAR(255) NOT NULL){tail}"""),
    "Forecast_Day": ("servicemanager", """CREATE TABLE Forecast_Day (
        device VARCHAR(20) NOT NULL,
        sensor INT NOT NULL,
        forecastDate DATE NOT NULL,
        value DOUBLE NOT NULL,
        degree INT NOT NULL,
        creationDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
        PRIMARY KEY (device, sensor, forecastDate)){tail}"""),
    "DeviceAlarm": ("servicemanager", """CREATE TABLE DeviceAlarm (
        ID {pk},
        device VARCHAR(20) NOT NULL,
        device_group VARCHAR(20) NULL,
        raisedAt TIMESTAMP NOT NULL,
        clearedAt TIMESTAMP NULL,
        lastStatus VARCHAR(20) NOT NULL,
        notifiedRaise INT NOT NULL DEFAULT 0,
        notifiedClear INT NOT NULL DEFAULT 0){tail}"""),
    "Notification": ("servicemanager", """CREATE TABLE Notification (
        ID {pk},
        kind VARCHAR(30) NOT NULL,
        subject VARCHAR(200) NOT NULL,
        body TEXT NOT NULL,
        topic VARCHAR(255) NULL,
        delivered INT NOT NULL DEFAULT 0,
        messageId VARCHAR(100) NULL,
        creationDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP){tail}"""),
    "ExampleOutput": ("servicemanager", """CREATE TABLE ExampleOutput (
        plugin VARCHAR(60) NOT NULL,
        device_group VARCHAR(20) NULL,
        devices INT NOT NULL,
        runAt VARCHAR(40) NOT NULL,
        creationDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP){tail}"""),
    # S3 export/purge ledger: one row per exported (table, day) partition; the
    # manifest JSON (parts, checksums, purge chunks) is the single source of truth for re-runs.
    "ExportLedger": ("servicemanager", """CREATE TABLE ExportLedger (
        tableName VARCHAR(64) NOT NULL,
        day VARCHAR(10) NOT NULL,
        state VARCHAR(20) NOT NULL,
        runId VARCHAR(250) NOT NULL,
        rowCount BIGINT NOT NULL DEFAULT 0,
        purgedRows BIGINT NOT NULL DEFAULT 0,
        manifest LONGTEXT NULL,
        updatedAt VARCHAR(32) NOT NULL,
        PRIMARY KEY (tableName, day)){tail}"""),
    # sensorStatistics: exact partial sums per device, sensor and hour of Facts.creationDate
    # (hourStart in the DB clock's zone); DECIMAL(65,0) because sums of squares of INT overflow BIGINT.
    "DeviceStatisticsHour": ("servicemanager", """CREATE TABLE DeviceStatisticsHour (
        device VARCHAR(20) NOT NULL,
        sensor INT NOT NULL,
        hourStart DATETIME NOT NULL,
        n BIGINT NOT NULL,
        s1 DECIMAL(65,0) NOT NULL,
        s2 DECIMAL(65,0) NOT NULL,
        PRIMARY KEY (device, sensor, hourStart)){tail}"""),
}

# (table, index name, DDL)
INDEXES: tuple[tuple[str, str, str], ...] = (
    ("Facts", "Facts_idx", "CREATE INDEX Facts_idx ON Facts "
     "(channel, year, month, day, hour, minute, second, device)"),
    ("Facts", "Facts_creationDate_idx", "CREATE INDEX Facts_creationDate_idx ON Facts (creationDate)"),
    # sensorStatistics no longer needs a covering index on Facts: it re-aggregates only
    # recent hours through Facts_creationDate_idx into DeviceStatisticsHour. Facts_stats_idx, which
    # older versions created here, is no longer added (ensure_schema never drops it; operators may).
    # sensorStatistics re-aggregates and prunes DeviceStatisticsHour by hour.
    ("DeviceStatisticsHour", "DeviceStatisticsHour_hour_idx",
     "CREATE INDEX DeviceStatisticsHour_hour_idx ON DeviceStatisticsHour (hourStart)"),
    ("DeviceAlarm", "DeviceAlarm_open_idx", "CREATE INDEX DeviceAlarm_open_idx ON DeviceAlarm (device, clearedAt)"),
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


def table_ddl(name: str, dialect: str) -> str:
    return TABLES[name][1].format(pk=_AUTO_PK[dialect], tail=_TAIL[dialect])


def inspect_schema(db: Iotdb) -> tuple[set[str], dict[str, set[str]], set[str]]:
    """Tables, index names per table, and views present in the IOTDB."""
    from sqlalchemy import inspect

    insp = inspect(db.engine)
    tables = set(insp.get_table_names())
    indexes = {t: {i["name"] for i in insp.get_indexes(t) if i["name"]} for t in tables}
    views = set(insp.get_view_names())
    return tables, indexes, views


def creation_date_index_warning(db: Iotdb) -> str | None:
    """A loud warning when ``Facts`` has no index on ``creationDate`` (export/purge scan)."""
    from sqlalchemy import inspect

    insp = inspect(db.engine)
    if "Facts" not in insp.get_table_names():
        return None
    for index in insp.get_indexes("Facts"):
        if index["column_names"] and index["column_names"][0] == "creationDate":
            return None
    return ("WARNING: Facts has no index on creationDate: export and purge will scan the whole "
            "table and lock the gateway's inserts. Run `python -m meccano db upgrade` to add "
            f"{CREATION_DATE_INDEX}.")


def ensure_schema(db: Iotdb, *, create_index: bool = True) -> SchemaReport:
    """Create the missing tables, indexes and views; never drop or alter anything."""
    from sqlalchemy import text

    report = SchemaReport()
    tables, indexes, views = inspect_schema(db)
    with db.begin() as con:
        for name in TABLES:
            if name in tables:
                report.present.append(f"table {name}")
                continue
            con.execute(text(table_ddl(name, db.dialect)))
            report.created.append(f"table {name}")
            indexes[name] = set()
    for table, index, ddl in INDEXES:
        if index in indexes.get(table, set()):
            report.present.append(f"index {index}")
            continue
        if index == CREATION_DATE_INDEX and not create_index:
            continue
        with db.begin() as con:
            con.execute(text(ddl))
        report.created.append(f"index {index}")
    if db.dialect == "mysql":
        for name, ddl in MYSQL_VIEWS.items():
            if name in views or name in tables:
                report.present.append(f"view {name}")
                continue
            with db.begin() as con:
                con.execute(text(ddl))
            report.created.append(f"view {name}")
    warning = creation_date_index_warning(db)
    if warning:
        log.warning(warning)
        report.warnings.append(warning)
    return report
