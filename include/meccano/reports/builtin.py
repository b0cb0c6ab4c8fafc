"""The shipped native report plugins' logic: query the IOTDB over a window, chart, save the numbers.

Each function takes the :class:`meccano.contract.context.PluginContext` and writes
``output.png`` and ``data.csv`` into ``context.report_dir``; the engine publishes them
to the report store afterwards. Windows end at the run's logical date (the time the
run stands for; "now" for a manual run) and reach back ``windowHours`` (a plugin
parameter, overridable per run through ``dag_run.conf``). Times are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meccano.reports import charts
from meccano.reports.store import CHART
from meccano.settings.rules import as_int  # the one rule for numbers

if TYPE_CHECKING:
    from meccano.contract.context import PluginContext
    from meccano.iotdb.db import Iotdb

DB_TIME = "%Y-%m-%d %H:%M:%S"


def _int_param(params: dict[str, Any], key: str, default: int, plugin: str) -> int:
    where = f"{plugin}: parameter {key} (plugin.json 'parameters' or the run's conf)"
    return as_int(params.get(key, default), where, 1)


def report_window(context: PluginContext, default_hours: int) -> tuple[datetime, datetime]:
    """``[end - windowHours, end)`` in UTC, end = the run's logical date (or now)."""
    hours = _int_param(context.params, "windowHours", default_hours, context.manifest.plugin)
    end = context.logical_date or context.data_interval_end or datetime.now(UTC)
    end = end.astimezone(UTC).replace(microsecond=0)
    return end - timedelta(hours=hours), end


def utc_query(db: Iotdb, sql: str, **params: Any) -> list[dict[str, Any]]:
    """A query whose TIMESTAMP columns are read and compared in UTC on MySQL too."""
    from sqlalchemy import text  # lazy: sqlalchemy costs 114 ms at import (python -X importtime)

    with db.engine.connect() as con:
        if db.dialect == "mysql":
            con.execute(text("SET time_zone = '+00:00'"))
        return [dict(r._mapping) for r in con.execute(text(sql), params)]


def _bounds(start: datetime, end: datetime) -> dict[str, str]:
    return {"start": start.strftime(DB_TIME), "end": end.strftime(DB_TIME)}


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def updates_by_device(context: PluginContext) -> dict[str, int]:
    """Facts rows (updates) per device in the window: sorted bars, top N and "others"."""
    start, end = report_window(context, 24)
    top_n = _int_param(context.params, "topN", charts.DEFAULT_TOP_N, context.manifest.plugin)
    rows = utc_query(context.iotdb, "SELECT device, COUNT(*) AS updates FROM Facts "
                     "WHERE creationDate >= :start AND creationDate < :end GROUP BY device", **_bounds(start, end))
    counts = {str(r["device"]): int(r["updates"]) for r in rows}
    return _write_counts(context.report_dir, counts, start, end, top_n)


def _write_counts(out: Path, counts: dict[str, int], start: datetime, end: datetime, top_n: int) -> dict[str, int]:
    title = "Updates per device"
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    charts.write_csv(out / "data.csv", ["device", "updates"], ordered)
    if not counts:
        charts.no_data_image(out / CHART, title=title,
                             message=f"No data in the window\n{charts.window_text(start, end)}")
        return counts
    bars = charts.fold_top_n(counts, top_n, others="mean")  # a sum would dwarf every other bar
    charts.bar_chart(out / CHART, bars, title=title, value_label="updates (Facts rows)",
                     category_label="device",
                     subtitle=f"{charts.window_text(start, end)} · {len(counts)} devices, "
                              f"{sum(counts.values()):,} updates")
    return counts


def fleet_status_history(context: PluginContext) -> int:
    """Devices per status over the window, from ``DeviceHistoryStatus``."""
    start, end = report_window(context, 7 * 24)
    rows = utc_query(context.iotdb, "SELECT creationDate, status, numberOfDevices FROM DeviceHistoryStatus "
                     "WHERE creationDate >= :start AND creationDate < :end ORDER BY creationDate, status",
                     **_bounds(start, end))
    out = context.report_dir
    points = [(_as_datetime(r["creationDate"]), str(r["status"]), int(r["numberOfDevices"])) for r in rows]
    charts.write_csv(out / "data.csv", ["creationDate", "status", "numberOfDevices"],
                     [(t.strftime(DB_TIME), s, n) for t, s, n in points])
    title = "Fleet status history"
    if not points:
        charts.no_data_image(out / CHART, title=title,
                             message=f"No data in the window\n{charts.window_text(start, end)}")
        return 0
    order = [s for s in charts.STATUS_COLORS if any(p[1] == s for p in points)]
    order += sorted({p[1] for p in points} - set(order))
    series = {s: [(t, n) for t, st, n in points if st == s] for s in order}
    charts.status_history_chart(out / CHART, series, title=title,
                                subtitle=f"{charts.window_text(start, end)} · {len(points)} samples")
    return len(points)


def sensor_statistics(context: PluginContext) -> int:
    """The latest statistics of each device's sensor in the window (mean ± deviation).

    ``DeviceStatistics`` holds only the present (sensorStatistics replaces each device/sensor's row: it
    is the gateway's noise filter), so the window ends now, not at the run's logical date: a run that
    starts late (the first run after the DAG is unpaused) would otherwise look for rows that were
    already replaced and draw an empty chart.
    """
    start, end = report_window(context, 7 * 24)
    now = datetime.now(UTC).replace(microsecond=0)
    if now > end:
        start, end = start + (now - end), now
    top_n = _int_param(context.params, "topN", charts.DEFAULT_TOP_N, context.manifest.plugin)
    rows = utc_query(context.iotdb, """
        SELECT s.device, s.sensor, s.average, s.deviation, s.error, s.creationDate
        FROM DeviceStatistics s
        JOIN (SELECT device, sensor, MAX(creationDate) AS latest FROM DeviceStatistics
              WHERE creationDate >= :start AND creationDate < :end GROUP BY device, sensor) m
          ON s.device = m.device AND s.sensor = m.sensor AND s.creationDate = m.latest
        ORDER BY s.device, s.sensor""", **_bounds(start, end))
    # Two rows with the same latest second: keep one, deterministically.
    latest: dict[tuple[str, int], dict[str, Any]] = {}
    for r in rows:
        latest.setdefault((str(r["device"]), int(r["sensor"])), r)
    out = context.report_dir
    ordered = sorted(latest.values(), key=lambda r: (-float(r["deviation"]), str(r["device"]), int(r["sensor"])))
    charts.write_csv(out / "data.csv", ["device", "sensor", "average", "deviation", "error", "creationDate"],
                     [(r["device"], r["sensor"], float(r["average"]), float(r["deviation"]), float(r["error"]),
                       _as_datetime(r["creationDate"]).strftime(DB_TIME)) for r in ordered])
    title = "Sensor statistics (mean ± one deviation)"
    if not ordered:
        charts.no_data_image(out / CHART, title=title,
                             message=f"No data in the window\n{charts.window_text(start, end)}")
        return 0
    shown = ordered[:top_n]
    hidden = len(ordered) - len(shown)
    note = f" · the {len(shown)} most variable of {len(ordered)}; all in data.csv" if hidden else ""
    charts.error_bar_chart(
        out / CHART,
        [(f"{r['device']} · sensor {r['sensor']}", float(r["average"]), float(r["deviation"])) for r in shown],
        title=title, value_label="sensor reading (sensor units)", category_label="device · sensor",
        subtitle=f"{charts.window_text(start, end)}{note}")
    return len(ordered)
