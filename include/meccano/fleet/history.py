"""historyStatus: one ``DeviceHistoryStatus`` row per status with its number of devices,
stamped with the database's clock, for the web console's history chart.

All four statuses are written, zeros included, so the chart's series have no gaps.
The four rows go in one transaction: a failed run writes nothing and its retry
writes one set.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from meccano.fleet.status import STATUSES, status_counts
from meccano.iotdb.clock import db_now, param
from meccano.iotdb.db import Iotdb
from meccano.settings.config import Settings


def record_history(db: Iotdb, settings: Settings, now: datetime | None = None) -> dict[str, int]:
    now = now or db_now(db)
    counts = status_counts(db, settings, now)
    rows = [{"status": s, "n": counts[s], "at": param(db, now)} for s in STATUSES]
    with db.begin() as con:
        con.execute(text("INSERT INTO DeviceHistoryStatus (status, numberOfDevices, creationDate) "
                         "VALUES (:status, :n, :at)"), rows)
    return counts
