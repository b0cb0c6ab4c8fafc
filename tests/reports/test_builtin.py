"""Each report plugin runs as its DAG (``dag.test()``) against MariaDB data with a known
answer; the test reads the numbers behind the chart from the report store."""

from __future__ import annotations

import csv
import io
import struct
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from meccano.plugins.factory import build_dags
from meccano.reports.store import ReportStore
from meccano.settings.config import load_settings

END = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DB = "%Y-%m-%d %H:%M:%S"


@pytest.fixture
def reports_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MECCANO_REPORTS_DIR", str(tmp_path / "reports"))
    return tmp_path / "reports"


def _insert(iotdb, sql: str, rows: list[dict]) -> None:
    with iotdb.begin() as con:
        con.execute(text("SET time_zone = '+00:00'"))  # the plugins read TIMESTAMPs in UTC
        con.execute(text(sql), rows)


def _facts(iotdb, device: str, times: list[datetime]) -> None:
    _insert(iotdb, "INSERT INTO Facts (channel, year, month, day, week_day, hour, minute, second, device_group, "
                   "device, sensor, data, creationDate) VALUES ('ch', 2026, 3, 10, 2, 0, 0, 0, 'g', :d, 1, 7, :t)",
            [{"d": device, "t": t.strftime(DB)} for t in times])


def _run(dag_id: str, logical_date: datetime = END, conf: dict | None = None) -> dict:
    dag = build_dags(only_dag_id=dag_id)[dag_id]
    run = dag.test(logical_date=logical_date, run_conf=conf)
    assert run.state == "success"
    store = ReportStore.from_settings(load_settings())
    entry = store.latest(dag_id)
    assert entry is not None, f"{dag_id} published nothing"
    png = store.read(dag_id, entry.stamp, "output.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 800 and height >= 250
    rows = list(csv.DictReader(io.StringIO(store.read(dag_id, entry.stamp, "data.csv").decode())))
    return {"rows": rows, "png": png, "entry": entry}


def test_device_avg_time_r(iotdb, airflow_db, reports_dir):
    # dev-a: contacts every 60 s (5 contacts); dev-b: 0, 100, 400 s -> mean gap 200 s;
    # dev-c: one contact (no gap); dev-d: contacts outside the 24 h window only.
    base = END - timedelta(hours=2)
    _facts(iotdb, "dev-a", [base + timedelta(seconds=60 * i) for i in range(5)])
    _facts(iotdb, "dev-b", [base + timedelta(seconds=s) for s in (0, 100, 400)])
    _facts(iotdb, "dev-c", [base])
    _facts(iotdb, "dev-d", [END - timedelta(hours=30), END - timedelta(hours=25), END + timedelta(minutes=1)])
    out = _run("deviceAvgTime")
    got = {r["device"]: (int(r["contacts"]), r["avg_seconds"]) for r in out["rows"]}
    assert got == {"dev-b": (3, "200"), "dev-a": (5, "60"), "dev-c": (1, "")}
    assert [r["device"] for r in out["rows"]] == ["dev-b", "dev-a", "dev-c"]  # slowest first


def test_device_avg_time_no_data(iotdb, airflow_db, reports_dir):
    out = _run("deviceAvgTime", END + timedelta(days=1))
    assert out["rows"] == []
    assert struct.unpack(">II", out["png"][16:24]) == (1000, 300)  # the "no data in the window" image


def test_updates_by_device(iotdb, airflow_db, reports_dir):
    for i in range(30):  # dev00 .. dev29 with i + 1 updates each inside the window
        _facts(iotdb, f"dev{i:02d}", [END - timedelta(minutes=5 + m) for m in range(i + 1)])
    _facts(iotdb, "dev-old", [END - timedelta(hours=25)])
    out = _run("updatesByDevice")
    counts = {r["device"]: int(r["updates"]) for r in out["rows"]}
    assert counts == {f"dev{i:02d}": i + 1 for i in range(30)}
    assert [r["device"] for r in out["rows"]][:3] == ["dev29", "dev28", "dev27"]
    # a run's conf widens the window to include the old device
    wide = _run("updatesByDevice", END + timedelta(seconds=1), {"windowHours": 48})
    assert {r["device"]: int(r["updates"]) for r in wide["rows"]}["dev-old"] == 1


def test_updates_by_device_no_data(iotdb, airflow_db, reports_dir):
    out = _run("updatesByDevice")
    assert out["rows"] == [] and struct.unpack(">II", out["png"][16:24]) == (1000, 300)


def test_fleet_status_history(iotdb, airflow_db, reports_dir):
    samples = []
    for h in range(1, 7):
        t = (END - timedelta(hours=h)).strftime(DB)
        samples += [{"s": "NORMAL", "n": 10 - h, "t": t}, {"s": "FAIL", "n": h, "t": t}]
    samples.append({"s": "NORMAL", "n": 99, "t": (END - timedelta(days=8)).strftime(DB)})  # outside
    _insert(iotdb, "INSERT INTO DeviceHistoryStatus (status, numberOfDevices, creationDate) VALUES (:s, :n, :t)",
            samples)
    out = _run("fleetStatusHistory")
    rows = out["rows"]
    assert len(rows) == 12
    assert sum(int(r["numberOfDevices"]) for r in rows if r["status"] == "FAIL") == 21
    assert rows[0] == {"creationDate": (END - timedelta(hours=6)).strftime(DB), "status": "FAIL",
                       "numberOfDevices": "6"}


def test_sensor_statistics_chart(iotdb, airflow_db, reports_dir):
    """The present statistics, whatever the run's logical date (DeviceStatistics holds only the present);
    rows older than the window are left out."""
    now = datetime.now(UTC)
    old, new = (now - timedelta(hours=5)).strftime(DB), (now - timedelta(hours=1)).strftime(DB)
    stale = (now - timedelta(days=30)).strftime(DB)
    _insert(iotdb, "INSERT INTO DeviceStatistics (device, sensor, average, deviation, error, creationDate) "
                   "VALUES (:d, :s, :a, :dev, :e, :t)", [
                       {"d": "dev-a", "s": 1, "a": 10.0, "dev": 1.0, "e": 0.1, "t": old},
                       {"d": "dev-a", "s": 1, "a": 20.0, "dev": 2.0, "e": 0.2, "t": new},  # newest wins
                       {"d": "dev-a", "s": 2, "a": 5.0, "dev": 9.5, "e": 0.5, "t": old},
                       {"d": "dev-b", "s": 1, "a": 30.0, "dev": 0.5, "e": 0.05, "t": new},
                       {"d": "dev-c", "s": 1, "a": 1.0, "dev": 99.0, "e": 1.0, "t": stale},  # a week+ old
                   ])
    out = _run("sensorStatisticsChart")
    got = [(r["device"], r["sensor"], float(r["average"]), float(r["deviation"])) for r in out["rows"]]
    assert got == [("dev-a", "2", 5.0, 9.5), ("dev-a", "1", 20.0, 2.0), ("dev-b", "1", 30.0, 0.5)]


def test_device_avg_time_r_on_the_demo_sqlite_iotdb(sqlite_iotdb, airflow_db, reports_dir):
    """On the embedded SQLite IOTDB the R report reads with RSQLite and gives the same answer."""
    base = END - timedelta(hours=2)
    rows = [{"d": d, "t": (base + timedelta(seconds=sec)).strftime(DB)}
            for d, secs in (("dev-a", [60 * i for i in range(5)]), ("dev-b", [0, 100, 400]), ("dev-c", [0]))
            for sec in secs]
    with sqlite_iotdb.begin() as con:
        con.execute(text("INSERT INTO Facts (channel, year, month, day, week_day, hour, minute, second, "
                         "device_group, device, sensor, data, creationDate) "
                         "VALUES ('ch', 2026, 3, 10, 2, 0, 0, 0, 'g', :d, 1, 7, :t)"), rows)
    out = _run("deviceAvgTime")
    got = {r["device"]: (int(r["contacts"]), r["avg_seconds"]) for r in out["rows"]}
    assert got == {"dev-b": (3, "200"), "dev-a": (5, "60"), "dev-c": (1, "")}

