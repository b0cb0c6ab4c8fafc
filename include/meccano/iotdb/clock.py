"""The database's clock, and datetimes as query parameters on either dialect.

The gateway stamps ``lastAnnouncementDate``, ``Facts.creationDate`` and
``Messages.creationDate`` with the database's ``CURRENT_TIMESTAMP``, so every "how
old is it" question is answered against the database's clock, never the worker's
(the two may sit in different time zones or drift apart). SQLite's
``CURRENT_TIMESTAMP`` is UTC text ``YYYY-MM-DD HH:MM:SS``; MariaDB's is the session
time zone's, the same one its ``TIMESTAMP`` columns are read and compared in.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from meccano.iotdb.db import Iotdb
from meccano.settings.zone import fleet_zone

if TYPE_CHECKING:
    from meccano.settings.config import Settings

SQLITE_FORMAT = "%Y-%m-%d %H:%M:%S"


def as_datetime(value: Any) -> datetime | None:
    """A column value (datetime on MySQL, text on SQLite) as a naive datetime."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    text = str(value).strip().replace("T", " ")
    return datetime.fromisoformat(text[:26]) if text else None


def as_date(value: Any) -> date:
    """A ``DATE(...)`` result (date on MySQL, text on SQLite) as a date."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def db_now(db: Iotdb) -> datetime:
    """``CURRENT_TIMESTAMP`` of the database, second precision, naive."""
    value = as_datetime(db.scalar("SELECT CURRENT_TIMESTAMP"))
    assert value is not None
    return value.replace(microsecond=0)


def param(db: Iotdb, value: datetime | None) -> Any:
    """A datetime as a bind parameter: text in SQLite's format, a datetime for MySQL.

    SQLite compares timestamps as text, so the parameter must have exactly the
    layout ``CURRENT_TIMESTAMP`` writes.
    """
    if value is None or db.dialect != "sqlite":
        return value
    return value.strftime(SQLITE_FORMAT)


def db_wall_time(db: Iotdb, moment: datetime) -> datetime:
    """``moment`` (aware) as the IOTDB's clock shows it: naive, in the database's own zone.

    The gateway stamps ``creationDate`` with the database's ``CURRENT_TIMESTAMP``, so a
    "day" of those rows is the database's local day (the original's rule: its export
    asked the database server for the date). MySQL's ``FROM_UNIXTIME`` converts in the
    session's zone, daylight saving included, without the server's time zone tables;
    SQLite's clock is UTC.
    """
    epoch = int(moment.timestamp())
    sql = "SELECT datetime(:e, 'unixepoch')" if db.dialect == "sqlite" else "SELECT FROM_UNIXTIME(:e)"
    value = as_datetime(db.scalar(sql, e=epoch))
    assert value is not None
    return value


def reference_time(settings: Settings, when: datetime | None, db: Iotdb | None = None) -> datetime:
    """The run's 'now' on the IOTDB's clock (naive, like ``creationDate``).

    A day of the export and the purge is the database's local day, as in the original;
    without ``db``, the configured zone's (an unknown zone is a configuration error).
    The export's plan and the partition maintenance (``iotdb.partition_ops``) both count days by it.
    """
    moment = when or datetime.now(UTC)
    if moment.tzinfo is None:
        return moment
    if db is not None:
        return db_wall_time(db, moment)
    return moment.astimezone(fleet_zone(settings.timezone)).replace(tzinfo=None)
