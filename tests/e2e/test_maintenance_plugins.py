"""Each fleet/maintenance plugin runs as its DAG (``dag.test()``) end to end, on MariaDB
and on SQLite, and its result is checked in the IOTDB (and in SNS for the e-mails)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from meccano.contract.manifest import load_plugin
from meccano.iotdb.clock import db_now
from meccano.plugins.factory import build_dags
from tests.support import fleet
from tests.support.fleet import ROOT_PLUGINS, ago, announce, facts, message, register
from tests.support.schedules import plain_schedule

PLUGINS = ["deviceHealth", "deviceAlert", "historyStatus", "sensorStatistics", "cleanMessages", "forecastDay"]

any_iotdb = fleet.any_iotdb  # the MariaDB/SQLite fixture


def _run(dag_id: str):
    dag = build_dags(only_dag_id=dag_id)[dag_id]
    run = dag.test()
    assert run.state == "success", f"{dag_id} ended {run.state}"
    return dag


def _fleet(db):
    now = db_now(db)
    register(db, {"n1": "storeA", "w1": "storeA", "f1": "storeB", "wait": None})
    announce(db, "n1", ago(now, 1))
    announce(db, "w1", ago(now, 10))
    announce(db, "f1", ago(now, 40))
    return now


@pytest.mark.parametrize("name", PLUGINS)
def test_plugin_manifest_and_docs(name):
    load = load_plugin(ROOT_PLUGINS / f"{name}:1.0")
    assert load.valid and not load.warnings, (load.problems, load.warnings)
    assert "<h1>" in load.manifest.docs.read_text()


def test_schedules(monkeypatch):
    monkeypatch.setenv("WARNINGLIMIT", "15")
    dags = build_dags()
    assert plain_schedule(dags["deviceHealth"]) == "*/15 * * * *"   # follows WARNINGLIMIT
    assert plain_schedule(dags["historyStatus"]) == "*/1 * * * *"
    assert plain_schedule(dags["sensorStatistics"]) == "*/10 * * * *"
    assert plain_schedule(dags["forecastDay"]) is None                # disabled by default
    monkeypatch.setenv("WARNINGLIMIT", "90")
    assert plain_schedule(build_dags(only_dag_id="deviceHealth")["deviceHealth"]) == timedelta(minutes=90)


def test_device_health_dag(any_iotdb, sns, airflow_db):
    _fleet(any_iotdb)
    _run("deviceHealth")
    [(subject, body)] = sns.received()
    assert subject == "[Meccano] Fleet health: 1 FAIL, 1 WARNING of 4 devices"
    assert "Group storeB:\n  f1" in body


def test_device_alert_dag(any_iotdb, sns, airflow_db):
    db = any_iotdb
    _fleet(db)
    _run("deviceAlert")
    _run("deviceAlert")   # second run: no repeat
    assert [s for s, _ in sns.received()] == ["[Meccano] ALERT: device f1 (storeB) is FAIL"]
    assert db.scalar("SELECT COUNT(*) FROM DeviceAlarm WHERE clearedAt IS NULL") == 1


def test_history_status_dag(any_iotdb, airflow_db):
    db = any_iotdb
    _fleet(db)
    _run("historyStatus")
    rows = db.query("SELECT status, numberOfDevices FROM DeviceHistoryStatus")
    assert {r["status"]: r["numberOfDevices"] for r in rows} == {
        "WAITING_APPROVE": 1, "NORMAL": 1, "WARNING": 1, "FAIL": 1}


def test_sensor_statistics_dag(any_iotdb, airflow_db):
    db = any_iotdb
    now = db_now(db)
    facts(db, [("d1", 1, v, ago(now, minutes=i + 1)) for i, v in enumerate([1, 2, 3, 4])])
    _run("sensorStatistics")
    [row] = db.query("SELECT device, sensor, average, deviation, error FROM DeviceStatistics")
    assert (row["device"], row["sensor"], row["average"]) == ("d1", 1, 2.5)
    assert row["deviation"] == pytest.approx(1.118033988749895)  # sqrt(1.25)
    assert row["error"] == pytest.approx(1.118033988749895 / 2)


def test_clean_messages_dag(any_iotdb, airflow_db):
    db = any_iotdb
    now = db_now(db)
    message(db, "d1", "TRANSIENT", ago(now, 5), ago(now, 1))
    keep = message(db, "d1", "PERSISTENT", ago(now, 5), ago(now, 1))
    message(db, "d1", "PERSISTENT", ago(now, days=40), None)
    _run("cleanMessages")
    assert [r["ID"] for r in db.query("SELECT ID FROM Messages")] == [keep]


def test_forecast_day_dag(any_iotdb, airflow_db):
    db = any_iotdb
    today = db_now(db).date()
    from datetime import datetime
    start = datetime.combine(today, datetime.min.time())
    facts(db, [("d1", 1, 3 * k + 5, start - timedelta(days=10 - k, hours=-12)) for k in range(10)])
    _run("forecastDay")
    rows = db.query("SELECT value FROM Forecast_Day ORDER BY forecastDate")
    assert len(rows) == 7
    assert [round(r["value"], 6) for r in rows] == [3 * k + 5 for k in range(10, 17)]
