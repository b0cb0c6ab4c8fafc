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

The aggregation is one ``GROUP BY device, sensor`` over the window, in the database;
only one row per device/sensor comes back to Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from meccano.config import Settings
from meccano.fleet.clock import db_now, param
from meccano.fleet.options import Option, read_options
from meccano.iotdb.db import Iotdb

OPTIONS = {
    "windowHours": Option(24, 1, float, "readings of the last N hours (Facts.creationDate)"),
    "minReadings": Option(2, 1, int, "fewer readings than this in the window: keep the previous row"),
}

AGGREGATE_SQL = """
SELECT device, sensor, COUNT(*) AS n, SUM(data) AS s1, SUM({square}) AS s2
FROM Facts WHERE creationDate >= :since AND creationDate <= :until
GROUP BY device, sensor"""

DELETE_BATCH = 1000  # device/sensor pairs per DELETE (row-value IN list: MySQL, SQLite >= 3.15)

# MariaDB: data*data of two INTs is a BIGINT, its SUM an exact DECIMAL. SQLite: exact int64.
_SQUARE = {"mysql": "CAST(data AS SIGNED) * data", "sqlite": "data * data"}


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


def from_sums(device: str, sensor: int, n: int, s1: Any, s2: Any) -> SensorStatistics:
    """Statistics from exact sums; ``n >= 1``."""
    s1, s2, n = int(s1), int(s2), int(n)
    numerator = n * s2 - s1 * s1  # exact, >= 0 by Cauchy-Schwarz
    deviation = math.sqrt(max(numerator, 0)) / n
    return SensorStatistics(device, int(sensor), n, s1 / n, deviation, deviation / math.sqrt(n))


def compute(db: Iotdb, since: datetime, until: datetime) -> list[SensorStatistics]:
    sql = AGGREGATE_SQL.format(square=_SQUARE[db.dialect])
    rows = db.query(sql, since=param(db, since), until=param(db, until))
    return [from_sums(r["device"], r["sensor"], r["n"], r["s1"], r["s2"]) for r in rows if r["n"]]


def update_statistics(db: Iotdb, settings: Settings, params: dict[str, Any] | None = None,
                      now: datetime | None = None) -> StatisticsRun:
    opts = read_options("sensorStatistics", OPTIONS, settings, params)
    until = now or db_now(db)
    since = until - timedelta(hours=opts["windowHours"])
    results = compute(db, since, until)
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
    return StatisticsRun(since, until, len(rows), len(results) - len(keep), results)
