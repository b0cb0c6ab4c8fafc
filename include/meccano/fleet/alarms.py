"""deviceAlert: an alarm lifecycle, not a spam loop.

* A device entering FAIL raises one alarm: a ``DeviceAlarm`` row (device, group,
  ``raisedAt``, ``clearedAt`` NULL, ``lastStatus`` FAIL).
* While it stays in FAIL its open alarm exists, so nothing is raised or sent again.
* When it leaves FAIL (it announced itself again, lost its group, or was unregistered)
  the alarm is cleared: ``clearedAt`` and ``lastStatus`` are set and one clear notice
  is sent.
* All raises and clears of one run go out as ONE message: one alert or one clear when
  there is a single event, else one digest (a thousand devices failing at once send
  one e-mail, listing at most ``maxListed`` devices per section).

``notifiedRaise`` / ``notifiedClear`` hold the ID of the ``Notification`` row that
carries the event. The alarm changes and that notification row are committed in one
transaction; publishing comes after, from the outbox (:mod:`meccano.fleet.notify`). If
SNS fails the task fails, the alarm state is already recorded, and the retry
re-sends the pending notification without raising anything twice.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text

from meccano.fleet.notify import Notifier
from meccano.fleet.options import read_options
from meccano.fleet.status import FAIL, DeviceState, device_states
from meccano.iotdb.clock import db_now, param
from meccano.iotdb.db import Iotdb
from meccano.settings.config import Settings

KIND = "alarm"
UNREGISTERED = "UNREGISTERED"


@dataclass(frozen=True)
class Event:
    device: str
    device_group: str | None
    status: str
    last_announcement: datetime | None


@dataclass
class AlarmRun:
    now: datetime
    raised: list[Event] = field(default_factory=list)
    cleared: list[Event] = field(default_factory=list)
    notification_id: int | None = None
    published: list[int] = field(default_factory=list)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "never"


def _lines(events: list[Event], limit: int) -> list[str]:
    by_group: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        by_group[e.device_group or "(no group)"].append(e)
    out: list[str] = []
    shown = 0
    for group in sorted(by_group):
        out.append(f"  group {group}:")
        for e in sorted(by_group[group], key=lambda e: e.device):
            if shown >= limit:
                break
            out.append(f"    {e.device}  status {e.status}  last contact {_when(e.last_announcement)}")
            shown += 1
    if len(events) > shown:
        out.append(f"  ... and {len(events) - shown} more")
    return out


def compose(run: AlarmRun, limit: int) -> tuple[str, str]:
    """Subject and body of the run's one message (alert, clear or digest)."""
    stamp = f"(database time {_when(run.now)})"
    if len(run.raised) == 1 and not run.cleared:
        e = run.raised[0]
        return (f"[Meccano] ALERT: device {e.device} ({e.device_group}) is FAIL",
                f"Device {e.device} of group {e.device_group} entered FAIL {stamp}.\n"
                f"Last contact: {_when(e.last_announcement)}.\nYou will be told once when it recovers.")
    if len(run.cleared) == 1 and not run.raised:
        e = run.cleared[0]
        return (f"[Meccano] CLEAR: device {e.device} ({e.device_group}) recovered ({e.status})",
                f"Device {e.device} of group {e.device_group} left FAIL {stamp}: now {e.status}.\n"
                f"Last contact: {_when(e.last_announcement)}.")
    body = [f"Meccano fleet alarms {stamp}: {len(run.raised)} device(s) entered FAIL, "
            f"{len(run.cleared)} recovered."]
    if run.raised:
        body += ["", f"Entered FAIL ({len(run.raised)}):", *_lines(run.raised, limit)]
    if run.cleared:
        body += ["", f"Recovered ({len(run.cleared)}):", *_lines(run.cleared, limit)]
    return (f"[Meccano] DIGEST: {len(run.raised)} device(s) FAIL, {len(run.cleared)} recovered", "\n".join(body))


def open_alarms(db: Iotdb) -> dict[str, dict[str, Any]]:
    rows = db.query("SELECT ID, device, device_group, raisedAt FROM DeviceAlarm WHERE clearedAt IS NULL")
    return {r["device"]: r for r in rows}


def evaluate_alarms(db: Iotdb, settings: Settings, notifier: Notifier | None = None,
                    params: dict[str, Any] | None = None, now: datetime | None = None) -> AlarmRun:
    """Record raises/clears and their notification atomically, then publish the outbox."""
    opts = read_options("alerts", settings, params)
    notifier = notifier or Notifier(db, settings)
    now = now or db_now(db)
    states: dict[str, DeviceState] = {s.device: s for s in device_states(db, settings, now)}
    run = AlarmRun(now)
    opened = open_alarms(db)
    for state in states.values():
        if state.status == FAIL and state.device not in opened:
            run.raised.append(Event(state.device, state.device_group, FAIL, state.last_announcement))
    for device, alarm in opened.items():
        current = states.get(device)
        if current is None:
            run.cleared.append(Event(device, alarm["device_group"], UNREGISTERED, None))
        elif current.status != FAIL:
            run.cleared.append(Event(device, current.device_group, current.status, current.last_announcement))
    if run.raised or run.cleared:
        subject, body = compose(run, opts["maxListed"])
        with db.begin() as con:
            nid = notifier.queue(con, KIND, subject, body)
            run.notification_id = nid
            if run.raised:
                con.execute(text("INSERT INTO DeviceAlarm (device, device_group, raisedAt, clearedAt, lastStatus, "
                                 "notifiedRaise, notifiedClear) VALUES (:device, :grp, :at, NULL, :status, :nid, 0)"),
                            [{"device": e.device, "grp": e.device_group, "at": param(db, now), "status": FAIL,
                              "nid": nid} for e in run.raised])
            if run.cleared:
                con.execute(text("UPDATE DeviceAlarm SET clearedAt = :at, lastStatus = :status, notifiedClear = :nid "
                                 "WHERE ID = :id AND clearedAt IS NULL"),
                            [{"at": param(db, now), "status": e.status, "nid": nid, "id": opened[e.device]["ID"]}
                             for e in run.cleared])
    run.published = notifier.flush(KIND)
    return run
