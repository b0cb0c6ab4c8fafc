"""The gateway simulator writes what the gateway would, on SQLite and MariaDB."""

from __future__ import annotations

import random

import pytest

from meccano.cli.simulator import Fleet, main, tick
from meccano.iotdb.clock import db_now


@pytest.fixture(params=["sqlite", "mariadb"])
def any_iotdb(request):  # noqa: ANN201
    return request.getfixturevalue("sqlite_iotdb" if request.param == "sqlite" else "iotdb")


def test_simulator_builds_a_fleet_with_history(any_iotdb):
    assert main(["--stores", "3", "--devices-per-store", "4", "--backfill-days", "1", "--once",
                 "--silence-rate", "0"]) == 0
    db = any_iotdb
    groups = {r["device_group"]: r["n"] for r in
              db.query("SELECT device_group, COUNT(*) AS n FROM Registration GROUP BY device_group")}
    assert groups == {"store-001": 4, "store-002": 4, "store-003": 4, None: 1}  # one waiting approval
    assert db.scalar("SELECT COUNT(*) FROM Announcement") == 13
    history = db.scalar("SELECT COUNT(*) FROM Facts")
    # at most one reading per board and sensor every 10 minutes for a day (144 slots x 12 boards x 2)
    assert 1000 < history <= 150 * 24 + 24
    assert db.scalar("SELECT COUNT(DISTINCT sensor) FROM Facts") == 2
    # a second start does not back-fill again
    main(["--stores", "3", "--devices-per-store", "4", "--backfill-days", "1", "--once", "--silence-rate", "0"])
    assert history < db.scalar("SELECT COUNT(*) FROM Facts") <= history + 24


def test_fleet_differs_between_boards_and_charts_have_data_at_once(sqlite_iotdb, caplog):
    """Rates, gaps, noise and failing boards differ; what the report charts read is back-filled, with a
    progress line per simulated day."""
    db = sqlite_iotdb
    caplog.set_level("INFO", logger="meccano")
    assert main(["--stores", "4", "--devices-per-store", "6", "--backfill-days", "2", "--once",
                 "--silence-rate", "0"]) == 0
    assert any(r.getMessage().startswith("backfill: day 1 of 2 done, ") for r in caplog.records)
    per_board = [r["n"] for r in db.query("SELECT device, COUNT(*) AS n FROM Facts GROUP BY device")]
    assert len(set(per_board)) > 5  # different rates and gaps, not one count for all
    assert max(per_board) > 2 * min(per_board)
    now = db_now(db)
    last = {r["device"]: r["t"] for r in db.query("SELECT device, MAX(creationDate) AS t FROM Facts GROUP BY device")}
    from meccano.iotdb.clock import as_datetime

    silent_for_hours = [d for d, t in last.items() if (now - as_datetime(t)).total_seconds() > 5 * 3600]
    assert 1 <= len(silent_for_hours) <= 4  # a few failing boards
    history = db.query("SELECT status, numberOfDevices AS n, creationDate FROM DeviceHistoryStatus "
                       "ORDER BY creationDate DESC, status LIMIT 4")
    assert {r["status"] for r in history} == {"NORMAL", "WARNING", "FAIL", "WAITING_APPROVE"}
    assert next(r["n"] for r in history if r["status"] == "FAIL") >= len(silent_for_hours)
    assert db.scalar("SELECT COUNT(DISTINCT creationDate) FROM DeviceHistoryStatus") > 250  # 2 days, 10 min
    assert db.scalar("SELECT COUNT(DISTINCT creationDate) FROM DeviceStatistics") > 40  # hourly, 2 days
    stats = db.query("SELECT device, sensor, deviation FROM DeviceStatistics WHERE sensor = 2 AND creationDate = "
                     "(SELECT MAX(creationDate) FROM DeviceStatistics)")
    assert len(stats) == 24  # every live board's temperature sensor
    deviations = sorted(float(r["deviation"]) for r in stats)
    assert deviations[-1] > 2 * deviations[0]  # sensors with different noise (on top of the daily curve)


def test_silent_boards_stop_announcing_and_come_back(sqlite_iotdb):
    db = sqlite_iotdb
    main(["--stores", "1", "--devices-per-store", "3", "--once", "--silence-rate", "0"])
    fleet = Fleet.build(1, 3, random.Random(1))
    for board in fleet.boards:
        board.failing, board.period = False, 10
    fleet.boards[0].silent_until = db_now(db).replace(year=2100)
    counts = tick(db, fleet, random.Random(1), silence_rate=0)
    assert counts["silent"] == 1 and counts["announced"] == len(fleet.boards) - 1
    fleet.boards[0].silent_until = db_now(db).replace(year=2000)
    assert tick(db, fleet, random.Random(1), silence_rate=0)["silent"] == 0


def test_bad_flags_are_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--stores", "0"])
    assert "--stores must be at least 1, got 0" in capsys.readouterr().err
