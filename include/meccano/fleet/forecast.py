"""forecastDay: polynomial regression over daily totals, forecasting the next days.

For each device and sensor, the daily total ``SUM(data)`` per ``DATE(creationDate)``
is aggregated in the database over the ``historyDays`` complete days before today
(today, still incomplete, is left out). ``numpy.polyfit`` fits a polynomial of
``degree`` to (day offset, total); days without readings are absent points, not
zeros. The fit is evaluated for today and the following ``days - 1`` days
(``days`` = FORECAST_DAYS) and written to ``Forecast_Day`` (replacing that device's
and sensor's forecasts from today on, in one transaction).

A device/sensor with fewer than ``max(minDays, degree + 2)`` days of history is
skipped with a message saying how many days it has and needs: a fit through as many
points as coefficients would reproduce noise, not a trend.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import text

from meccano.fleet.options import read_options
from meccano.iotdb.clock import as_date, db_now, param
from meccano.iotdb.db import Iotdb
from meccano.settings.config import Settings

DAILY_SQL = """
SELECT device, sensor, DATE(creationDate) AS day, SUM(data) AS total
FROM Facts WHERE creationDate >= :since AND creationDate < :until
GROUP BY device, sensor, DATE(creationDate)"""


@dataclass(frozen=True)
class Forecast:
    device: str
    sensor: int
    values: dict[date, float]


@dataclass
class ForecastRun:
    today: date
    forecasts: list[Forecast] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _day(db: Iotdb, day: date) -> Any:
    return day.isoformat() if db.dialect == "sqlite" else day


def fit(days: list[date], totals: list[float], degree: int, start: date, horizon: int) -> dict[date, float]:
    """Least-squares polynomial through (day, total), evaluated for ``horizon`` days from ``start``."""
    import numpy as np  # lazy: numpy costs 129 ms at import (python -X importtime)

    origin = days[0]
    x = np.array([(d - origin).days for d in days], dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.RankWarning)
        coefficients = np.polyfit(x, np.array(totals, dtype=float), degree)
    targets = [start + timedelta(days=i) for i in range(horizon)]
    values = np.polyval(coefficients, np.array([(d - origin).days for d in targets], dtype=float))
    return {d: float(v) for d, v in zip(targets, values, strict=True)}


def forecast_days(db: Iotdb, settings: Settings, params: dict[str, Any] | None = None,
                  now: datetime | None = None, log: Any = None) -> ForecastRun:
    import numpy as np  # lazy: numpy costs 129 ms at import (python -X importtime)

    opts = read_options("forecast", settings, params)
    now = now or db_now(db)
    today = now.date()
    since = datetime.combine(today - timedelta(days=opts["historyDays"]), datetime.min.time())
    until = datetime.combine(today, datetime.min.time())
    series: dict[tuple[str, int], list[tuple[date, float]]] = defaultdict(list)
    for r in db.query(DAILY_SQL, since=param(db, since), until=param(db, until)):
        series[(r["device"], int(r["sensor"]))].append((as_date(r["day"]), float(r["total"])))
    need = max(opts["minDays"], opts["degree"] + 2)
    run = ForecastRun(today)
    for (device, sensor), points in sorted(series.items()):
        points.sort()
        if len(points) < need:
            run.skipped.append(f"device {device} sensor {sensor}: skipped, {len(points)} day(s) of history in the "
                               f"last {opts['historyDays']} days, at least {need} needed for degree "
                               f"{opts['degree']} (raise historyDays or lower degree/minDays)")
            continue
        try:
            values = fit([p[0] for p in points], [p[1] for p in points], opts["degree"], today, opts["days"])
        except np.exceptions.RankWarning:
            run.skipped.append(f"device {device} sensor {sensor}: skipped, the {len(points)} days cannot determine "
                               f"a polynomial of degree {opts['degree']} (lower the degree)")
            continue
        run.forecasts.append(Forecast(device, sensor, values))
    if not series:
        run.skipped.append(f"no readings in the last {opts['historyDays']} complete days: nothing to forecast")
    for message in run.skipped:
        if log is not None:
            log.info(message)
    if run.forecasts:
        with db.begin() as con:
            con.execute(text("DELETE FROM Forecast_Day WHERE device = :device AND sensor = :sensor "
                             "AND forecastDate >= :today"),
                        [{"device": f.device, "sensor": f.sensor, "today": _day(db, today)} for f in run.forecasts])
            con.execute(text("INSERT INTO Forecast_Day (device, sensor, forecastDate, value, degree, creationDate) "
                             "VALUES (:device, :sensor, :day, :value, :degree, :at)"),
                        [{"device": f.device, "sensor": f.sensor, "day": _day(db, d), "value": v,
                          "degree": opts["degree"], "at": param(db, now)}
                         for f in run.forecasts for d, v in f.values.items()])
    return run
