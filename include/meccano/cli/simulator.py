"""A gateway simulator: writes into the IOTDB what the Meccano gateway would.

    python -m meccano.cli.simulator [--stores 5] [--devices-per-store 6] [--interval 10]
                                [--backfill-days 3] [--silence-rate 0.02] [--seed 7] [--once]

* stores become device groups (``store-001`` ...); each has boards registered to it, and a
  few boards per fleet are registered but not yet approved (``device_group`` NULL:
  WAITING_APPROVE);
* every ``--interval`` seconds each live board announces itself (``Announcement``) and
  sends readings (``Facts``): sensor 1 counts visitors (Poisson-like around a daily
  curve), sensor 2 a temperature with noise and, rarely, a spike the sigma filter must
  catch;
* boards go silent now and then for 3 to 40 minutes and come back, so WARNING, FAIL,
  alerts and recoveries happen on their own;
* the console queues messages (TRANSIENT and PERSISTENT) and boards read some;
* the fleet differs between boards: each reports every 10, 20 or 30 minutes, its
  temperature sensor has its own noise (a few are very noisy), stores differ in traffic,
  boards have gaps of an hour or more in their history, and a few boards are failing
  (silent for hours, so FAIL, alerts and the health report show them at once);
* ``--backfill-days`` writes that many days of history first: the readings, and what the
  report charts read (``DeviceHistoryStatus`` every 10 minutes, ``DeviceStatistics`` per
  board and sensor), so every chart has data on the demo's first start and export and
  forecast have work at once.

Times come from the database's clock (as the gateway's ``CURRENT_TIMESTAMP``), so the
simulator and the ServiceManager agree on "now" on MySQL and SQLite alike.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import signal
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from meccano.iotdb.clock import db_now, param
from meccano.iotdb.db import Iotdb
from meccano.iotdb.schema import ensure_schema
from meccano.settings.config import Settings, load_settings

log = logging.getLogger("meccano.cli.simulator")

FACT_INSERT = text(
    "INSERT INTO Facts (channel, year, month, day, week_day, hour, minute, second, device_group, device, "
    "sensor, data, creationDate) VALUES (:channel, :year, :month, :day, :week_day, :hour, :minute, :second, "
    ":device_group, :device, :sensor, :data, :creationDate)")


@dataclass
class Board:
    device: str
    group: str | None
    silent_until: datetime | None = None
    base_temp: float = 22.0
    period: int = 10  # minutes between readings
    noise: float = 0.4  # temperature sensor's standard deviation
    traffic: float = 1.0  # the store's visitors, relative
    failing: bool = False  # a broken board: silent for hours


@dataclass
class Fleet:
    boards: list[Board] = field(default_factory=list)

    @classmethod
    def build(cls, stores: int, per_store: int, rng: random.Random) -> Fleet:
        boards = []
        for s in range(1, stores + 1):
            traffic = rng.choice((0.4, 0.7, 1.0, 1.4, 2.0))
            for d in range(1, per_store + 1):
                boards.append(Board(f"5c:cf:{s:02x}:{d:02x}", f"store-{s:03d}", base_temp=rng.uniform(19, 26),
                                    period=rng.choice((10, 10, 10, 20, 30)),
                                    noise=rng.choice((0.2, 0.4, 0.4, 0.8, 1.5, 3.0)), traffic=traffic))
        # a few failing boards (about one in twelve, at least one)
        for b in rng.sample(boards, max(1, len(boards) // 12)):
            b.failing = True
        pending = max(1, len(boards) // 15)
        for p in range(1, pending + 1):
            boards.append(Board(f"5c:cf:ff:{p:02x}", None))
        return cls(boards)


def visitors(when: datetime, rng: random.Random, traffic: float = 1.0) -> int:
    """Visitors in a 10-minute slot: a store-hours curve (9h to 21h) with noise."""
    hour = when.hour + when.minute / 60
    level = 0.0 if hour < 9 or hour > 21 else 12 * traffic * math.sin(math.pi * (hour - 9) / 12)
    return max(0, round(rng.gauss(level, math.sqrt(level + 1))))


def temperature(board: Board, when: datetime, rng: random.Random) -> int:
    value = board.base_temp + 2 * math.sin(2 * math.pi * (when.hour / 24)) + rng.gauss(0, board.noise)
    if rng.random() < 0.002:
        value += rng.choice((-1, 1)) * rng.uniform(15, 30)  # a noisy reading the sigma filter should drop
    return round(value)


def fact(board: Board, sensor: int, value: int, when: datetime, db: Iotdb) -> dict[str, Any]:
    return {"channel": "meccano", "year": when.year, "month": when.month, "day": when.day,
            "week_day": when.isoweekday() % 7, "hour": when.hour, "minute": when.minute, "second": when.second,
            "device_group": board.group or "", "device": board.device, "sensor": sensor, "data": value,
            "creationDate": param(db, when)}


def register(db: Iotdb, fleet: Fleet, now: datetime) -> None:
    existing = {r["device"] for r in db.query("SELECT device FROM Registration")}
    with db.begin() as con:
        for b in fleet.boards:
            if b.device in existing:
                continue
            con.execute(text("INSERT INTO Registration (device, device_group, registrationDate, memo, type) "
                             "VALUES (:d, :g, :r, :m, 'ESP8266')"),
                        {"d": b.device, "g": b.group, "r": param(db, now) if b.group else None,
                         "m": "simulated board"})


FAILING_HOURS = 6  # a failing board has been silent this long when the demo starts


def _gaps(board: Board, start: datetime, now: datetime, rng: random.Random) -> list[tuple[datetime, datetime]]:
    """Silent stretches in a board's history: a gap of 1-3 hours about once a day, and a failing
    board's last hours."""
    gaps = []
    when = start
    while when < now:
        when += timedelta(hours=rng.uniform(12, 36))
        gaps.append((when, when + timedelta(hours=rng.uniform(1, 3))))
    if board.failing:
        gaps.append((now - timedelta(hours=FAILING_HOURS), now + timedelta(days=3650)))
    return gaps


def _statistics(readings: dict[tuple[str, int], list[int]], at: object) -> list[dict[str, Any]]:
    """DeviceStatistics rows of the readings so far (the last day of them)."""
    out = []
    for (device, sensor), values in readings.items():
        recent = values[-144:]
        if len(recent) >= 2:
            deviation = statistics.pstdev(recent)
            out.append({"d": device, "s": sensor, "avg": statistics.fmean(recent), "dev": deviation,
                        "err": deviation / math.sqrt(len(recent)), "at": at})
    return out


def _readings_at(b: Board, when: datetime, start: datetime, gaps: list[tuple[datetime, datetime]],
                 rng: random.Random) -> list[tuple[int, int]]:
    """The ``(sensor, value)`` readings board ``b`` sends at ``when``: none in a gap or off its period."""
    if any(a <= when < z for a, z in gaps) or int((when - start).total_seconds() // 60) % b.period:
        return []
    return [(1, visitors(when, rng, b.traffic)), (2, temperature(b, when, rng))]


def _status_counts(fleet: Fleet, live: list[Board], last_seen: dict[str, datetime], when: datetime,
                   normal: int, warning: int) -> dict[str, int]:
    """The fleet's status at ``when`` as the DeviceStatus view would count it."""
    counts = {"NORMAL": 0, "WARNING": 0, "FAIL": 0, "WAITING_APPROVE": len(fleet.boards) - len(live)}
    for b in live:
        seen = last_seen.get(b.device)
        age = (when - seen).total_seconds() / 60 if seen else None
        counts["FAIL" if age is None or age > warning else "WARNING" if age > normal else "NORMAL"] += 1
    return counts


def _announce(db: Iotdb, last_seen: dict[str, datetime]) -> None:
    """The boards' last announcements, so the status is right from the first minute."""
    known = {r["device"] for r in db.query("SELECT device FROM Announcement")}
    with db.begin() as con:
        for device, seen in last_seen.items():
            sql = ("UPDATE Announcement SET lastAnnouncementDate = :t WHERE device = :d" if device in known
                   else "INSERT INTO Announcement (device, lastAnnouncementDate) VALUES (:d, :t)")
            con.execute(text(sql), {"d": device, "t": param(db, seen)})


def backfill(db: Iotdb, fleet: Fleet, days: int, now: datetime, rng: random.Random,
             settings: Settings | None = None) -> int:
    """Days of history: each board's readings at its own rate with its gaps, the fleet's status
    every 10 minutes (DeviceHistoryStatus) and each board's sensor statistics (DeviceStatistics)."""
    normal, warning = (settings.status.normal_minutes, settings.status.warning_minutes) if settings else (5, 15)
    start = (now - timedelta(days=days)).replace(minute=0, second=0)
    live = [b for b in fleet.boards if b.group]
    gaps = {b.device: _gaps(b, start, now, rng) for b in live}
    last_seen: dict[str, datetime] = {}
    readings: dict[tuple[str, int], list[int]] = {}
    rows: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    stats: list[dict[str, Any]] = []
    total = 0
    when = start
    while when < now - timedelta(minutes=10):
        for b in live:
            sent = _readings_at(b, when, start, gaps[b.device], rng)
            if sent:
                last_seen[b.device] = when
            for sensor, value in sent:
                rows.append(fact(b, sensor, value, when, db))
                readings.setdefault((b.device, sensor), []).append(value)
        counts = _status_counts(fleet, live, last_seen, when, normal, warning)
        history += [{"status": k, "n": v, "at": param(db, when)} for k, v in counts.items()]
        if when.minute == 0:  # hourly statistics, as sensorStatistics would have computed them
            stats += _statistics(readings, param(db, when))
        if len(rows) >= 5000:
            with db.begin() as con:
                con.execute(FACT_INSERT, rows)
            total += len(rows)
            rows = []
        when += timedelta(minutes=10)
        if (when - start) % timedelta(days=1) < timedelta(minutes=10):  # one line per simulated day
            log.info("backfill: day %d of %d done, %d Facts rows so far", (when - start) // timedelta(days=1),
                     days, total + len(rows))
    with db.begin() as con:
        if rows:
            con.execute(FACT_INSERT, rows)
        if history:
            con.execute(text("INSERT INTO DeviceHistoryStatus (status, numberOfDevices, creationDate) "
                             "VALUES (:status, :n, :at)"), history)
        stats += _statistics(readings, param(db, now - timedelta(minutes=5)))
        if stats:
            con.execute(text("INSERT INTO DeviceStatistics (device, sensor, average, deviation, error, creationDate) "
                             "VALUES (:d, :s, :avg, :dev, :err, :at)"), stats)
    _announce(db, last_seen)
    return total + len(rows)


def tick(db: Iotdb, fleet: Fleet, rng: random.Random, silence_rate: float) -> dict[str, int]:
    """One gateway cycle: announcements, readings, silences, messages."""
    now = db_now(db)
    facts, announced, silent = [], [], 0
    for b in fleet.boards:
        if b.failing or (b.silent_until and now < b.silent_until):
            silent += 1
            continue
        b.silent_until = None
        if rng.random() < silence_rate:
            b.silent_until = now + timedelta(minutes=rng.choice((3, 8, 12, 20, 40)))
            silent += 1
            continue
        announced.append(b.device)
        # a board on a 20- or 30-minute rate sends readings at a matching share of the cycles
        if b.group and rng.random() < 10 / b.period:
            facts.append(fact(b, 1, visitors(now, rng, b.traffic), now, db))
            facts.append(fact(b, 2, temperature(b, now, rng), now, db))
    # MySQL reports 0 affected rows for an UPDATE that changes nothing: decide by presence.
    known = {r["device"] for r in db.query("SELECT device FROM Announcement")}
    with db.begin() as con:
        for device in announced:
            sql = ("UPDATE Announcement SET lastAnnouncementDate = :t WHERE device = :d" if device in known
                   else "INSERT INTO Announcement (device, lastAnnouncementDate) VALUES (:d, :t)")
            con.execute(text(sql), {"t": param(db, now), "d": device})
        if facts:
            con.execute(FACT_INSERT, facts)
        if rng.random() < 0.3:
            b = rng.choice(fleet.boards)
            con.execute(text("INSERT INTO Messages (device, sender, delivery_type, message, creationDate) "
                             "VALUES (:d, 'console', :t, :m, :c)"),
                        {"d": b.device, "t": rng.choice(("TRANSIENT", "TRANSIENT", "PERSISTENT")),
                         "m": rng.choice(("blink", "reboot", "vote:open", "beacon:on")), "c": param(db, now)})
        con.execute(text("UPDATE Messages SET readDate = :t WHERE readDate IS NULL AND device IN "
                         "(SELECT device FROM Announcement WHERE lastAnnouncementDate = :t)"),
                    {"t": param(db, now)})
    return {"announced": len(announced), "silent": silent, "facts": len(facts)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meccano.cli.simulator", description=__doc__.split("\n")[0])
    parser.add_argument("--stores", type=int, default=5)
    parser.add_argument("--devices-per-store", type=int, default=6)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between gateway cycles")
    parser.add_argument("--backfill-days", type=int, default=0)
    parser.add_argument("--silence-rate", type=float, default=0.02, help="chance per cycle a board goes silent")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--once", action="store_true", help="one cycle, then exit")
    args = parser.parse_args(argv)
    for name, value in (("--stores", args.stores), ("--devices-per-store", args.devices_per_store)):
        if value < 1:
            parser.error(f"{name} must be at least 1, got {value}")
    if args.interval <= 0 or not 0 <= args.silence_rate < 1:
        parser.error("--interval must be > 0 and --silence-rate between 0 and 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s simulator %(message)s")
    rng = random.Random(args.seed)
    settings = load_settings()
    db = Iotdb.from_settings(settings)
    ensure_schema(db)
    fleet = Fleet.build(args.stores, args.devices_per_store, rng)
    now = db_now(db)
    register(db, fleet, now)
    log.info("fleet: %d boards in %d stores (%s)", len(fleet.boards), args.stores, db)
    if args.backfill_days:
        already = db.scalar("SELECT COUNT(*) FROM Facts WHERE creationDate < :t",
                            t=param(db, now - timedelta(hours=1)))
        if already:
            log.info("backfill skipped: %d historical Facts rows already there", already)
        else:
            log.info("backfill: %d days ...", args.backfill_days)
            log.info("backfill: %d Facts rows written, with the fleet's status history and statistics",
                     backfill(db, fleet, args.backfill_days, now, rng, settings))
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while running:
        counts = tick(db, fleet, rng, args.silence_rate)
        log.info("cycle: %(announced)d announced, %(silent)d silent, %(facts)d facts", counts)
        if args.once:
            break
        deadline = time.monotonic() + args.interval
        while running and time.monotonic() < deadline:
            time.sleep(0.2)
    db.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
