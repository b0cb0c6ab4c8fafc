"""Shared data builders and the MariaDB/SQLite fixture of the fleet tests (no tests here)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from meccano.iotdb.clock import param


@pytest.fixture(params=["mariadb", "sqlite"])
def any_iotdb(request):
    """The same test on a fresh MariaDB IOTDB and on the embedded SQLite one."""
    return request.getfixturevalue("iotdb" if request.param == "mariadb" else "sqlite_iotdb")


def register(db, devices: dict[str, str | None]) -> None:
    """Registration rows: device -> group (None = waiting for approval)."""
    with db.begin() as con:
        con.execute(text("INSERT INTO Registration (device, device_group) VALUES (:d, :g)"),
                    [{"d": d, "g": g} for d, g in devices.items()])


def announce(db, device: str, at: datetime) -> None:
    with db.begin() as con:
        con.execute(text("DELETE FROM Announcement WHERE device = :d"), {"d": device})
        con.execute(text("INSERT INTO Announcement (device, lastAnnouncementDate) VALUES (:d, :at)"),
                    {"d": device, "at": param(db, at)})


def ago(now: datetime, minutes: int = 0, seconds: int = 0, days: int = 0) -> datetime:
    return now - timedelta(days=days, minutes=minutes, seconds=seconds)


def facts(db, rows: list[tuple[str, int, int, datetime]], group: str = "store1") -> None:
    """Facts rows (device, sensor, data, creationDate); the date fields follow creationDate."""
    with db.begin() as con:
        con.execute(text(
            "INSERT INTO Facts (channel, year, month, day, week_day, hour, minute, second, device_group, device, "
            "sensor, data, creationDate) VALUES ('ch', :y, :mo, :d, :wd, :h, :mi, :s, :g, :device, :sensor, "
            ":data, :at)"),
            [{"y": at.year, "mo": at.month, "d": at.day, "wd": at.isoweekday() % 7, "h": at.hour, "mi": at.minute,
              "s": at.second, "g": group, "device": dev, "sensor": sensor, "data": data, "at": param(db, at)}
             for dev, sensor, data, at in rows])


def message(db, device: str, delivery: str, created: datetime, read: datetime | None) -> int:
    with db.begin() as con:
        result = con.execute(text(
            "INSERT INTO Messages (device, sender, delivery_type, message, readDate, creationDate) "
            "VALUES (:d, 'admin', :t, :m, :r, :c)"),
            {"d": device, "t": delivery, "m": f"{delivery} for {device}", "r": param(db, read),
             "c": param(db, created)})
        return int(result.lastrowid)


ROOT_PLUGINS = Path(__file__).resolve().parents[2] / "meccano_plugins"


SNS_SECRET = "moto-Secret-Key-123"  # the AWS secret key the `sns` fixture sets
