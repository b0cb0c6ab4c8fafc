"""cleanMessages: delivered TRANSIENT go, old messages go, PERSISTENT stay until their age."""

from __future__ import annotations

from meccano.fleet.clock import db_now
from meccano.fleet.messages import clean_messages
from meccano.settings.config import load_settings
from tests.support import fleet
from tests.support.fleet import ago, message

any_iotdb = fleet.any_iotdb  # the MariaDB/SQLite fixture


def test_clean_messages(any_iotdb):
    db = any_iotdb
    now = db_now(db)
    keep, gone = {}, {}
    gone["transient read"] = message(db, "d1", "TRANSIENT", ago(now, minutes=5), ago(now, minutes=1))
    keep["transient unread"] = message(db, "d1", "TRANSIENT", ago(now, minutes=5), None)
    keep["persistent read"] = message(db, "d1", "PERSISTENT", ago(now, days=29), ago(now, days=28))
    keep["persistent unread young"] = message(db, "d2", "PERSISTENT", ago(now, days=29, minutes=59), None)
    gone["persistent old"] = message(db, "d2", "PERSISTENT", ago(now, days=30, minutes=1), None)
    gone["transient unread old"] = message(db, "d2", "TRANSIENT", ago(now, days=31), None)
    for i in range(7):  # more than one batch
        gone[f"read {i}"] = message(db, "d3", "TRANSIENT", ago(now, minutes=9), ago(now, minutes=8))

    run = clean_messages(db, load_settings(), params={"batchSize": 3}, now=now)
    assert run.deleted == len(gone)
    left = {r["ID"] for r in db.query("SELECT ID FROM Messages")}
    assert left == set(keep.values())
    assert clean_messages(db, load_settings(), now=now).deleted == 0  # re-runnable

    # a shorter age (config section) reaches the 29-day-old PERSISTENT messages
    run = clean_messages(db, load_settings(), params={"maxAgeDays": 1}, now=now)
    assert run.deleted == 2
    assert {r["ID"] for r in db.query("SELECT ID FROM Messages")} == {keep["transient unread"]}
