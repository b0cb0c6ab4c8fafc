"""the ServiceManager's tables as earlier versions created them: created when missing, adopted when present

Versions up to fff2004 created these tables with ``ensure_schema`` and recorded no version. This
revision creates what is missing with the very DDL those versions ran (so a database created now and
one created then end identical) and adopts what exists with its rows, after checking that each adopted
table has the columns the ServiceManager reads. A database of a version before a7d7b9a has no
``DeviceStatisticsHour``: it is created here. Nothing of the gateway is touched.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import inspect

from meccano.errors import MigrationError

revision = "0001_baseline"
down_revision = None

_AUTO_PK = {"mysql": "INT NOT NULL AUTO_INCREMENT PRIMARY KEY", "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT"}
_TAIL = {"mysql": " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4", "sqlite": ""}

TABLES = {
    "Forecast_Day": """CREATE TABLE Forecast_Day (
        device VARCHAR(20) NOT NULL,
        sensor INT NOT NULL,
        forecastDate DATE NOT NULL,
        value DOUBLE NOT NULL,
        degree INT NOT NULL,
        creationDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
        PRIMARY KEY (device, sensor, forecastDate)){tail}""",
    "DeviceAlarm": """CREATE TABLE DeviceAlarm (
        ID {pk},
        device VARCHAR(20) NOT NULL,
        device_group VARCHAR(20) NULL,
        raisedAt TIMESTAMP NOT NULL,
        clearedAt TIMESTAMP NULL,
        lastStatus VARCHAR(20) NOT NULL,
        notifiedRaise INT NOT NULL DEFAULT 0,
        notifiedClear INT NOT NULL DEFAULT 0){tail}""",
    "Notification": """CREATE TABLE Notification (
        ID {pk},
        kind VARCHAR(30) NOT NULL,
        subject VARCHAR(200) NOT NULL,
        body TEXT NOT NULL,
        topic VARCHAR(255) NULL,
        delivered INT NOT NULL DEFAULT 0,
        messageId VARCHAR(100) NULL,
        creationDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP){tail}""",
    "ExampleOutput": """CREATE TABLE ExampleOutput (
        plugin VARCHAR(60) NOT NULL,
        device_group VARCHAR(20) NULL,
        devices INT NOT NULL,
        runAt VARCHAR(40) NOT NULL,
        creationDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP){tail}""",
    # S3 export/purge ledger: one row per exported (table, day) partition; the
    # manifest JSON (parts, checksums, purge chunks) is the single source of truth for re-runs.
    "ExportLedger": """CREATE TABLE ExportLedger (
        tableName VARCHAR(64) NOT NULL,
        day VARCHAR(10) NOT NULL,
        state VARCHAR(20) NOT NULL,
        runId VARCHAR(250) NOT NULL,
        rowCount BIGINT NOT NULL DEFAULT 0,
        purgedRows BIGINT NOT NULL DEFAULT 0,
        manifest LONGTEXT NULL,
        updatedAt VARCHAR(32) NOT NULL,
        PRIMARY KEY (tableName, day)){tail}""",
    # sensorStatistics: exact partial sums per device, sensor and hour of Facts.creationDate
    # (hourStart in the DB clock's zone); DECIMAL(65,0) because sums of squares of INT overflow BIGINT.
    "DeviceStatisticsHour": """CREATE TABLE DeviceStatisticsHour (
        device VARCHAR(20) NOT NULL,
        sensor INT NOT NULL,
        hourStart DATETIME NOT NULL,
        n BIGINT NOT NULL,
        s1 DECIMAL(65,0) NOT NULL,
        s2 DECIMAL(65,0) NOT NULL,
        PRIMARY KEY (device, sensor, hourStart)){tail}""",
}

# (table, index, DDL): sensorStatistics prunes DeviceStatisticsHour by hour; deviceAlert finds open alarms
INDEXES = (
    ("DeviceStatisticsHour", "DeviceStatisticsHour_hour_idx",
     "CREATE INDEX DeviceStatisticsHour_hour_idx ON DeviceStatisticsHour (hourStart)"),
    ("DeviceAlarm", "DeviceAlarm_open_idx", "CREATE INDEX DeviceAlarm_open_idx ON DeviceAlarm (device, clearedAt)"),
)


def _columns(ddl: str) -> list[str]:
    """The column names of one of the DDL texts above (one column per line)."""
    lines = [line.split()[0] for line in ddl.splitlines()[1:]]
    return [name for name in lines if name != "PRIMARY"]


def upgrade() -> list[str]:
    bind = op.get_bind()
    dialect = "sqlite" if bind.dialect.name == "sqlite" else "mysql"
    inspector = inspect(bind)
    present = set(inspector.get_table_names())
    done = []
    for name, ddl in TABLES.items():
        if name not in present:
            op.execute(ddl.format(pk=_AUTO_PK[dialect], tail=_TAIL[dialect]))
            done.append(f"created table {name}")
            continue
        have = {c["name"] for c in inspector.get_columns(name)}
        missing = [c for c in _columns(ddl) if c not in have]
        if missing:
            raise MigrationError(
                f"table {name} exists but lacks the column(s) {', '.join(missing)} the ServiceManager reads: it was "
                f"not created by the ServiceManager. Nothing of {name} was changed; rename it out of the way "
                f"(RENAME TABLE {name} TO {name}_old) and re-run `python -m meccano db upgrade`")
        done.append(f"adopted table {name} (it was there; rows kept)")
    for table, index, ddl in INDEXES:
        if table in present and index in {i["name"] for i in inspect(bind).get_indexes(table)}:
            done.append(f"adopted index {index}")
        else:
            op.execute(ddl)
            done.append(f"created index {index}")
    return done


def downgrade() -> list[str]:
    raise MigrationError(
        f"{revision} is the first revision: going below it would drop the ServiceManager's tables "
        f"{', '.join(TABLES)} with their rows (ExportLedger records what the export purged from the gateway's "
        "tables). Nothing was changed. If that is really meant, drop those tables and the table "
        "meccano_alembic_version by hand")
