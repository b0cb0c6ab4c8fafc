"""Device status (the gateway's DeviceStatus view with configurable thresholds) and
historyStatus counts, on MariaDB and SQLite, exactly at each boundary."""

from __future__ import annotations

from dataclasses import replace

import pytest

from meccano.errors import ConfigError
from meccano.fleet.history import record_history
from meccano.fleet.status import device_states, status_counts
from meccano.iotdb.clock import as_datetime, db_now
from meccano.settings.config import StatusSettings, load_settings
from tests.support import fleet
from tests.support.fleet import ago, announce, register

# (minutes, seconds) since the last announcement -> status with the default 5/15 thresholds
BOUNDARIES = [
    ((0, 0), "NORMAL"),
    ((5, 0), "NORMAL"),     # TIMESTAMPDIFF(MINUTE) = 5 <= 5
    ((5, 59), "NORMAL"),    # still 5 whole minutes
    ((6, 0), "WARNING"),    # 6 > 5
    ((15, 0), "WARNING"),
    ((15, 59), "WARNING"),
    ((16, 0), "FAIL"),      # 16 > 15
    ((600, 0), "FAIL"),
]

any_iotdb = fleet.any_iotdb  # the MariaDB/SQLite fixture


def _seed_boundaries(db, now):
    register(db, {f"d{i:02}": "store1" for i in range(len(BOUNDARIES))})
    for i, ((m, s), _) in enumerate(BOUNDARIES):
        announce(db, f"d{i:02}", ago(now, m, s))


def test_status_exactly_at_each_boundary(any_iotdb):
    db = any_iotdb
    settings = load_settings()
    now = db_now(db)
    _seed_boundaries(db, now)
    register(db, {"never": "store2", "waiting": None})
    announce(db, "waiting", ago(now, 100))  # no group wins over an old announcement
    got = {s.device: s.status for s in device_states(db, settings, now)}
    expected = {f"d{i:02}": status for i, (_, status) in enumerate(BOUNDARIES)}
    expected.update({"never": "FAIL", "waiting": "WAITING_APPROVE"})
    assert got == expected
    assert status_counts(db, settings, now) == {"WAITING_APPROVE": 1, "NORMAL": 3, "WARNING": 3, "FAIL": 3}


def test_thresholds_come_from_settings(any_iotdb, monkeypatch):
    db = any_iotdb
    monkeypatch.setenv("STATUS_NORMAL_MINUTES", "2")
    monkeypatch.setenv("STATUS_WARNING_MINUTES", "30")
    settings = load_settings()
    assert settings.status == StatusSettings(normal_minutes=2, warning_minutes=30)
    now = db_now(db)
    register(db, {"a": "g", "b": "g", "c": "g", "d": "g", "e": "g"})
    for device, minutes, seconds in (("a", 2, 59), ("b", 3, 0), ("c", 16, 0), ("d", 30, 59), ("e", 31, 0)):
        announce(db, device, ago(now, minutes, seconds))
    got = {s.device: s.status for s in device_states(db, settings, now)}
    assert got == {"a": "NORMAL", "b": "WARNING", "c": "WARNING", "d": "WARNING", "e": "FAIL"}
    # the same instants with the default thresholds
    defaults = replace(settings, status=StatusSettings())
    got = {s.device: s.status for s in device_states(db, defaults, now)}
    assert got == {"a": "NORMAL", "b": "NORMAL", "c": "FAIL", "d": "FAIL", "e": "FAIL"}


def test_bad_thresholds_are_refused_with_the_key(monkeypatch):
    monkeypatch.setenv("STATUS_NORMAL_MINUTES", "20")
    monkeypatch.setenv("STATUS_WARNING_MINUTES", "10")
    with pytest.raises(ConfigError, match=r"status\.warningMinutes \(10\) must be greater"):
        load_settings()


def test_same_answer_as_the_gateway_view(iotdb):
    """On MariaDB, with the default thresholds, our status equals the gateway's own DeviceStatus view.
    Offsets sit 20 s away from each boundary: the view reads NOW() itself."""
    db = iotdb
    offsets = {"n1": 10, "n2": 340, "w1": 380, "w2": 940, "f1": 980, "f2": 86_400}
    register(db, {**dict.fromkeys(offsets, "grp"), "never": "grp", "wait": None})
    for device, seconds in offsets.items():
        db.execute("INSERT INTO Announcement (device, lastAnnouncementDate) "
                   "VALUES (:d, NOW() - INTERVAL :s SECOND)", d=device, s=seconds)
    view = {r["device"]: r["status"] for r in db.query("SELECT device, status FROM DeviceStatus")}
    ours = {s.device: s.status for s in device_states(db, load_settings())}
    assert ours == view
    assert view == {"n1": "NORMAL", "n2": "NORMAL", "w1": "WARNING", "w2": "WARNING", "f1": "FAIL",
                    "f2": "FAIL", "never": "FAIL", "wait": "WAITING_APPROVE"}


def test_history_appends_one_row_per_status(any_iotdb):
    db = any_iotdb
    settings = load_settings()
    now = db_now(db)
    _seed_boundaries(db, now)
    assert record_history(db, settings, now) == {"WAITING_APPROVE": 0, "NORMAL": 3, "WARNING": 3, "FAIL": 2}
    register(db, {"new": None})
    record_history(db, settings, now)
    rows = db.query("SELECT status, numberOfDevices, creationDate FROM DeviceHistoryStatus")
    assert len(rows) == 8
    assert {as_datetime(r["creationDate"]) for r in rows} == {now}
    by_status: dict[str, list[int]] = {}
    for r in rows:
        by_status.setdefault(r["status"], []).append(r["numberOfDevices"])
    assert {k: sorted(v) for k, v in by_status.items()} == {
        "WAITING_APPROVE": [0, 1], "NORMAL": [3, 3], "WARNING": [3, 3], "FAIL": [2, 2]}
