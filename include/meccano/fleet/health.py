"""deviceHealth: the fleet report e-mailed to the administrators every WARNINGLIMIT
minutes: counts per status, then by device group the devices in WARNING and FAIL with
their last contact. Counting runs in the database; only WARNING/FAIL devices are read.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from meccano.fleet.notify import Notifier
from meccano.fleet.status import FAIL, STATUSES, WARNING, DeviceState, device_states, status_counts
from meccano.iotdb.clock import db_now
from meccano.iotdb.db import Iotdb
from meccano.settings.config import Settings

KIND = "health"


@dataclass(frozen=True)
class HealthReport:
    now: datetime
    counts: dict[str, int]
    troubled: list[DeviceState]
    subject: str
    body: str


def build_report(db: Iotdb, settings: Settings, now: datetime | None = None) -> HealthReport:
    now = now or db_now(db)
    counts = status_counts(db, settings, now)
    troubled = device_states(db, settings, now, statuses=(WARNING, FAIL))
    total = sum(counts.values())
    subject = f"[Meccano] Fleet health: {counts[FAIL]} FAIL, {counts[WARNING]} WARNING of {total} devices"
    s = settings.status
    lines = [f"Meccano fleet health at {now:%Y-%m-%d %H:%M:%S} (database time)",
             f"NORMAL: last contact under {s.normal_minutes + 1} min; WARNING: under {s.warning_minutes + 1} min; "
             "FAIL: older or never.", "", "Devices per status:"]
    lines += [f"  {status:16} {counts[status]}" for status in STATUSES]
    lines.append(f"  {'TOTAL':16} {total}")
    by_group: dict[str, list[DeviceState]] = defaultdict(list)
    for d in troubled:
        by_group[d.device_group or "(no group)"].append(d)
    if not troubled:
        lines += ["", "No device in WARNING or FAIL."]
    for group in sorted(by_group):
        lines += ["", f"Group {group}:"]
        for d in sorted(by_group[group], key=lambda d: (d.status != FAIL, d.device)):
            last = f"{d.last_announcement:%Y-%m-%d %H:%M:%S}" if d.last_announcement else "never"
            lines.append(f"  {d.device:20} {d.status:8} last contact {last}")
    return HealthReport(now, counts, troubled, subject, "\n".join(lines))


def send_health_report(db: Iotdb, settings: Settings, notifier: Notifier | None = None,
                       now: datetime | None = None) -> HealthReport:
    report = build_report(db, settings, now)
    (notifier or Notifier(db, settings)).send(KIND, report.subject, report.body)
    return report
