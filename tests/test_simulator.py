"""The gateway simulator writes what the gateway would, on SQLite and MariaDB."""

from __future__ import annotations

import random

import pytest

from meccano.fleet.clock import db_now
from meccano.simulator import Fleet, main, tick


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
    # one day from the top of the hour a day ago, every 10 minutes until 10 minutes ago: 143 to 150
    # slots of 12 boards x 2 sensors, plus this cycle's 24 readings
    assert 143 * 24 + 24 <= history <= 150 * 24 + 24
    assert db.scalar("SELECT COUNT(DISTINCT sensor) FROM Facts") == 2
    # a second start does not back-fill again
    main(["--stores", "3", "--devices-per-store", "4", "--backfill-days", "1", "--once", "--silence-rate", "0"])
    assert db.scalar("SELECT COUNT(*) FROM Facts") == history + 24


def test_silent_boards_stop_announcing_and_come_back(sqlite_iotdb):
    db = sqlite_iotdb
    main(["--stores", "1", "--devices-per-store", "3", "--once", "--silence-rate", "0"])
    fleet = Fleet.build(1, 3, random.Random(1))
    fleet.boards[0].silent_until = db_now(db).replace(year=2100)
    counts = tick(db, fleet, random.Random(1), silence_rate=0)
    assert counts["silent"] == 1 and counts["announced"] == len(fleet.boards) - 1
    fleet.boards[0].silent_until = db_now(db).replace(year=2000)
    assert tick(db, fleet, random.Random(1), silence_rate=0)["silent"] == 0


def test_bad_flags_are_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--stores", "0"])
    assert "--stores must be at least 1, got 0" in capsys.readouterr().err
