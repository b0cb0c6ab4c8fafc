"""sensorStatistics: average, deviation and error per device and sensor, for the
gateway's sigma filter.

Definitions (over the readings ``x_1..x_n`` of one device and sensor whose
``Facts.creationDate`` lies in the window ``[now - windowHours, now]``, DB clock):

* ``average``   = arithmetic mean, ``sum(x) / n``
* ``deviation`` = **population** standard deviation, ``sqrt(sum((x - mean)^2) / n)``
  (the sigma of the readings themselves, which is what the filter compares with)
* ``error``     = standard error of the mean, ``deviation / sqrt(n)``

One reading gives ``deviation = 0`` and ``error = 0``; no reading gives no result.
Nothing is ever NaN: the database returns exact integer sums (``SUM`` of an INT column
is DECIMAL on MariaDB and a 64-bit integer on SQLite) and the variance
``(n*S2 - S1^2) / n^2`` is computed from them with exact integers, so it cannot be
negative through rounding.

How it is written (the gateway reads ``SELECT average, deviation FROM
DeviceStatistics WHERE device = ? AND sensor = ?`` and takes the first row, with no
ORDER BY): each device/sensor keeps exactly ONE row, replaced in a single transaction
(delete + insert), so the filter always reads the fresh values and never an empty
table (InnoDB readers see the old rows until commit). Pairs with fewer than
``minReadings`` readings in the window (default 2) are not written: their previous
row, if any, is kept. The reason: the gateway discards a reading when it exceeds
``sigmas * deviation``, so a ``deviation`` of 0 from a single reading would make it
discard every later non-zero reading of that sensor.

How it is computed (incremental): ``DeviceStatisticsHour`` keeps exact partial sums
``(n, sum(x), sum(x*x))`` per device, sensor and hour of ``creationDate`` (DB clock). Each run

1. re-aggregates from ``Facts`` only the hours that may have changed: every hour from the
   start of the hour containing ``now - lookbackHours`` (default 2, so a row is always counted
   when its ``creationDate`` is at most 2 h older than the next run after its commit),
   plus any hours after the newest bucket (runs were paused) and any hours of the window before
   the oldest bucket (first run, grown window). One ``creationDate`` range query per hour
   through ``Facts_creationDate_idx``; that hour's buckets are replaced (delete + insert) in one
   transaction. A run on empty buckets back-fills the whole window this way, hour by hour, so
   memory stays bounded;
2. deletes the buckets of hours that start before the window;
3. sums the buckets of the whole hours of the window, adds the first, partial hour of the
   window (``[since, next hour)``) read from ``Facts`` directly, and derives the statistics.

The result equals a full recomputation over ``[since, until]`` except for rows that arrive
late: a row committed with a ``creationDate`` older than the look-back (and not in the partial
first hour) is not counted until a run with ``rebuild: 1`` (dag_run.conf) re-aggregates the
whole window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from meccano.fleet.options import read_options
from meccano.iotdb.clock import as_datetime, db_now, param
from meccano.iotdb.db import Iotdb
from meccano.settings.config import Settings

# Full recomputation over a window: the reference the incremental path must equal (tests, bench).
AGGREGATE_SQL = """
SELECT device, sensor, COUNT(*) AS n, SUM(data) AS s1, SUM({square}) AS s2
FROM Facts WHERE creationDate >= :since AND creationDate <= :until
GROUP BY device, sensor"""

# One hour (or the window's partial first hour): a creationDate range, Facts_creationDate_idx.
RANGE_SQL = """
SELECT device, sensor, COUNT(*) AS n, SUM(data) AS s1, SUM({square}) AS s2
FROM Facts WHERE creationDate >= :lo AND creationDate < :hi AND creationDate <= :until
GROUP BY device, sensor"""

BUCKETS_SQL = """
SELECT device, sensor, SUM(n) AS n, SUM(s1) AS s1, SUM(s2) AS s2
FROM DeviceStatisticsHour WHERE hourStart >= :first AND hourStart <= :last
GROUP BY device, sensor"""

DELETE_BATCH = 1000  # device/sensor pairs per DELETE (row-value IN list: MySQL, SQLite >= 3.15)
HOUR = timedelta(hours=1)

# MariaDB: data*data of two INTs is a BIGINT, its SUM an exact DECIMAL. SQLite: exact int64.
_SQUARE = {"mysql": "CAST(data AS SIGNED) * data", "sqlite": "data * data"}

Sums = dict[tuple[str, int], list[int]]  # (device, sensor) -> [n, s1, s2]


@dataclass(frozen=True)
class SensorStatistics:
    device: str
    sensor: int
    n: int
    average: float
    deviation: float
    error: float


@dataclass(frozen=True)
class StatisticsRun:
    since: datetime
    until: datetime
    written: int
    skipped: int  # pairs with fewer than minReadings readings (previous row kept)
    results: list[SensorStatistics]
    hours_aggregated: int = 0  # hours re-aggregated from Facts into DeviceStatisticsHour


def from_sums(device: str, sensor: int, n: int, s1: Any, s2: Any) -> SensorStatistics:
    """Statistics from exact sums; ``n >= 1``."""
    s1, s2, n = int(s1), int(s2), int(n)
    numerator = n * s2 - s1 * s1  # exact, >= 0 by Cauchy-Schwarz
    deviation = math.sqrt(max(numerator, 0)) / n
    return SensorStatistics(device, int(sensor), n, s1 / n, deviation, deviation / math.sqrt(n))


def floor_hour(value: datetime) -> datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def compute(db: Iotdb, since: datetime, until: datetime) -> list[SensorStatistics]:
    """Full recomputation over ``[since, until]`` (one GROUP BY over Facts; not used by the plugin)."""
    sql = AGGREGATE_SQL.format(square=_SQUARE[db.dialect])
    rows = db.query(sql, since=param(db, since), until=param(db, until))
    return [from_sums(r["device"], r["sensor"], r["n"], r["s1"], r["s2"]) for r in rows if r["n"]]


def _range_sums(db: Iotdb, lo: datetime, hi: datetime, until: datetime) -> list[dict[str, Any]]:
    return db.query(RANGE_SQL.format(square=_SQUARE[db.dialect]), lo=param(db, lo), hi=param(db, hi),
                    until=param(db, until))


def hours_to_aggregate(db: Iotdb, first: datetime, until: datetime, lookback: float,
                       rebuild: bool) -> list[datetime]:
    """Starts of the hours in ``[first, until]`` whose buckets may be missing or stale."""
    last = floor_hour(until)
    if first > last:
        return []
    span = db.query("SELECT MIN(hourStart) AS lo, MAX(hourStart) AS hi FROM DeviceStatisticsHour "
                    "WHERE hourStart >= :first AND hourStart <= :last", first=param(db, first),
                    last=param(db, last))[0]
    lo, hi = as_datetime(span["lo"]), as_datetime(span["hi"])
    starts: set[datetime] = set()
    if rebuild or lo is None or hi is None:
        redo_from, gap_until = first, first
    else:
        redo_from = min(floor_hour(until - timedelta(hours=lookback)), hi)  # hi: the last run's last hour
        gap_until = lo  # window hours before the oldest bucket: first run, grown window (cheap when empty)
    hour = first
    while hour <= last:
        if hour >= redo_from or hour < gap_until:
            starts.add(hour)
        hour += HOUR
    return sorted(starts)


def refresh_buckets(db: Iotdb, first: datetime, until: datetime, lookback: float, rebuild: bool = False) -> int:
    """Re-aggregate the hours that may have changed, prune older buckets; returns hours aggregated."""
    hours = hours_to_aggregate(db, first, until, lookback, rebuild)
    for hour in hours:
        rows = [{"device": r["device"], "sensor": r["sensor"], "h": param(db, hour), "n": r["n"],
                 "s1": int(r["s1"]), "s2": int(r["s2"])}
                for r in _range_sums(db, hour, hour + HOUR, until) if r["n"]]
        with db.begin() as con:
            con.execute(text("DELETE FROM DeviceStatisticsHour WHERE hourStart = :h"), {"h": param(db, hour)})
            if rows:
                con.execute(text("INSERT INTO DeviceStatisticsHour (device, sensor, hourStart, n, s1, s2) "
                                 "VALUES (:device, :sensor, :h, :n, :s1, :s2)"), rows)
    with db.begin() as con:
        con.execute(text("DELETE FROM DeviceStatisticsHour WHERE hourStart < :first"), {"first": param(db, first)})
    return len(hours)


def _add(into: Sums, rows: list[dict[str, Any]]) -> None:
    for r in rows:
        if not r["n"]:
            continue
        acc = into.setdefault((r["device"], int(r["sensor"])), [0, 0, 0])
        acc[0] += int(r["n"])
        acc[1] += int(r["s1"])
        acc[2] += int(r["s2"])


def compute_incremental(db: Iotdb, since: datetime, until: datetime, lookback: float,
                        rebuild: bool = False) -> tuple[list[SensorStatistics], int]:
    """Statistics over ``[since, until]`` from the hour buckets; returns them and the hours aggregated."""
    first = floor_hour(since)
    if first < since:
        first += HOUR  # the first whole hour of the window; [since, first) is read from Facts below
    aggregated = refresh_buckets(db, first, until, lookback, rebuild)
    sums: Sums = {}
    # hours after until's hour (a run with an earlier `now`) are not summed
    _add(sums, db.query(BUCKETS_SQL, first=param(db, first), last=param(db, floor_hour(until))))
    if since < first:
        _add(sums, _range_sums(db, since, first, until))
    results = [from_sums(d, s, n, s1, s2) for (d, s), (n, s1, s2) in sorted(sums.items())]
    return results, aggregated


def update_statistics(db: Iotdb, settings: Settings, params: dict[str, Any] | None = None,
                      now: datetime | None = None) -> StatisticsRun:
    opts = read_options("sensorStatistics", settings, params)
    until = now or db_now(db)
    since = until - timedelta(hours=opts["windowHours"])
    results, aggregated = compute_incremental(db, since, until, opts["lookbackHours"], bool(opts["rebuild"]))
    keep = [r for r in results if r.n >= opts["minReadings"]]
    for r in keep:
        if not (math.isfinite(r.average) and math.isfinite(r.deviation) and math.isfinite(r.error)):
            raise ValueError(f"non-finite statistics for device {r.device!r} sensor {r.sensor}: {r}")
    rows = [{"device": r.device, "sensor": r.sensor, "average": r.average, "deviation": r.deviation,
             "error": r.error, "at": param(db, until)} for r in keep]
    if rows:
        with db.begin() as con:
            for start in range(0, len(rows), DELETE_BATCH):
                batch = rows[start:start + DELETE_BATCH]
                pairs = ", ".join(f"(:d{i}, :s{i})" for i in range(len(batch)))
                binds = {k: v for i, r in enumerate(batch) for k, v in ((f"d{i}", r["device"]), (f"s{i}", r["sensor"]))}
                con.execute(text(f"DELETE FROM DeviceStatistics WHERE (device, sensor) IN ({pairs})"), binds)
            con.execute(text("INSERT INTO DeviceStatistics (device, sensor, average, deviation, error, "
                             "creationDate) VALUES (:device, :sensor, :average, :deviation, :error, :at)"), rows)
    return StatisticsRun(since, until, len(rows), len(results) - len(keep), results, aggregated)
