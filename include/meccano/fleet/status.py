"""Device status exactly as the gateway's ``DeviceStatus`` view defines it, with the
thresholds from ``settings.status`` instead of the hard-coded 5 and 15 minutes.

The view: ``WAITING_APPROVE`` when the device has no group; else
``TIMESTAMPDIFF(MINUTE, lastAnnouncementDate, NOW())`` (whole minutes, truncated)
``<= normal`` is ``NORMAL``, ``<= warning`` is ``WARNING``, anything else ``FAIL``,
including a registered device that never announced itself (no Announcement row).

Whole minutes truncated means "fewer than ``normal + 1`` minutes elapsed", so the
query compares ``lastAnnouncementDate`` with two instants computed in Python from the
database's own clock (portable: no TIMESTAMPDIFF, which SQLite lacks):

* NORMAL  when ``last > now - (normal + 1) min``   (5:59 old is NORMAL, 6:00 is WARNING)
* WARNING when ``last > now - (warning + 1) min``  (15:59 is WARNING, 16:00 is FAIL)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from meccano.iotdb.clock import as_datetime, db_now, param
from meccano.iotdb.db import Iotdb
from meccano.settings.config import Settings, StatusSettings

WAITING_APPROVE, NORMAL, WARNING, FAIL = "WAITING_APPROVE", "NORMAL", "WARNING", "FAIL"
STATUSES: tuple[str, ...] = (WAITING_APPROVE, NORMAL, WARNING, FAIL)

STATUS_SQL = """
SELECT r.device AS device, r.device_group AS device_group, a.lastAnnouncementDate AS lastAnnouncementDate,
  CASE WHEN r.device_group IS NULL THEN 'WAITING_APPROVE'
       WHEN a.lastAnnouncementDate IS NULL THEN 'FAIL'
       WHEN a.lastAnnouncementDate > :normal_after THEN 'NORMAL'
       WHEN a.lastAnnouncementDate > :warning_after THEN 'WARNING'
       ELSE 'FAIL' END AS status
FROM Registration r LEFT JOIN Announcement a ON a.device = r.device"""


@dataclass(frozen=True)
class DeviceState:
    device: str
    device_group: str | None
    last_announcement: datetime | None
    status: str


def status_params(db: Iotdb, thresholds: StatusSettings, now: datetime) -> dict[str, object]:
    """The two bind parameters of :data:`STATUS_SQL` for ``now`` (the DB clock)."""
    return {
        "normal_after": param(db, now - timedelta(minutes=thresholds.normal_minutes + 1)),
        "warning_after": param(db, now - timedelta(minutes=thresholds.warning_minutes + 1)),
    }


def device_states(db: Iotdb, settings: Settings, now: datetime | None = None,
                  statuses: tuple[str, ...] | None = None) -> list[DeviceState]:
    """Every registered device with its status (optionally only some statuses)."""
    now = now or db_now(db)
    params = status_params(db, settings.status, now)
    sql = f"SELECT * FROM ({STATUS_SQL}) s"
    if statuses:
        names = {f"st{i}": s for i, s in enumerate(statuses)}
        sql += " WHERE s.status IN (" + ", ".join(f":{k}" for k in names) + ")"
        params.update(names)
    rows = db.query(sql + " ORDER BY s.device_group, s.device", **params)
    return [DeviceState(r["device"], r["device_group"], as_datetime(r["lastAnnouncementDate"]), r["status"])
            for r in rows]


def status_counts(db: Iotdb, settings: Settings, now: datetime | None = None) -> dict[str, int]:
    """Number of devices per status (GROUP BY in the database); every status present."""
    now = now or db_now(db)
    rows = db.query(f"SELECT s.status AS status, COUNT(*) AS n FROM ({STATUS_SQL}) s GROUP BY s.status",
                    **status_params(db, settings.status, now))
    counts = dict.fromkeys(STATUSES, 0)
    counts.update({r["status"]: int(r["n"]) for r in rows})
    return counts
