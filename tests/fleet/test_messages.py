"""cleanMessages: delivered TRANSIENT go, old messages go, PERSISTENT stay until their age."""

from __future__ import annotations

import json
import re

import pytest

from meccano.errors import ConfigError
from meccano.fleet.messages import clean_messages
from meccano.iotdb.clock import db_now
from meccano.settings.config import load_settings
from tests.support import fleet
from tests.support.fleet import ago, message

any_iotdb = fleet.any_iotdb  # the MariaDB/SQLite fixture


def test_clean_messages(any_iotdb, tmp_path, monkeypatch):
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

    # a run may not ask for a shorter age than configured: nothing goes
    with pytest.raises(ConfigError, match=re.escape("maxAgeDays (from plugin parameter / dag_run.conf "
                                                    "'maxAgeDays'): 0.001 is below the configured 30")):
        clean_messages(db, load_settings(), params={"maxAgeDays": 0.001}, now=now)
    with pytest.raises(ConfigError, match=re.escape("purge (plugin parameter / dag_run.conf): not an option of "
                                                    "cleanMessages; allowed: maxAgeDays, batchSize")):
        clean_messages(db, load_settings(), params={"purge": 1, "batchSize": 3}, now=now)
    with pytest.raises(ConfigError, match=r"confMayWiden .*not an option"):
        clean_messages(db, load_settings(), params={"confMayWiden": True, "maxAgeDays": 1}, now=now)
    assert {r["ID"] for r in db.query("SELECT ID FROM Messages")} == set(keep.values())
    assert clean_messages(db, load_settings(), params={"maxAgeDays": 60}, now=now).deleted == 0  # more: allowed

    # a shorter age reaches the 29-day-old PERSISTENT messages when the configuration allows it
    cfg = tmp_path / "c.yml"
    cfg.write_text(json.dumps({"default": {"cleanMessages": {"confMayWiden": True}}}))
    monkeypatch.setenv("MECCANO_CONFIG", str(cfg))
    run = clean_messages(db, load_settings(), params={"maxAgeDays": 1}, now=now)
    assert run.deleted == 2
    assert {r["ID"] for r in db.query("SELECT ID FROM Messages")} == {keep["transient unread"]}


def test_a_triggered_run_asking_for_a_shorter_age_fails_at_once_and_deletes_nothing(iotdb, run_plugin_dag, capfd):
    now = db_now(iotdb)
    kept = {message(iotdb, "d1", "PERSISTENT", ago(now, minutes=60), None),
            message(iotdb, "d1", "TRANSIENT", ago(now, minutes=60), None)}

    run = run_plugin_dag("cleanMessages", conf={"maxAgeDays": 0.001})

    assert run.state == "failed"
    assert [ti.try_number for ti in run.get_task_instances()] == [1]  # no retry: the conf would be the same
    out = capfd.readouterr()
    assert "maxAgeDays (from plugin parameter / dag_run.conf 'maxAgeDays'): 0.001 is below the configured 30" in (
        out.out + out.err)
    assert {r["ID"] for r in iotdb.query("SELECT ID FROM Messages")} == kept

    run = run_plugin_dag("cleanMessages", conf={"purge": True})
    assert run.state == "failed"
    out = capfd.readouterr()
    assert ("dag_run.conf purge: not a parameter of cleanMessages:1.0; allowed: maxAgeDays, batchSize; "
            "nothing was run" in out.out + out.err)
    assert {r["ID"] for r in iotdb.query("SELECT ID FROM Messages")} == kept


@pytest.mark.parametrize(("section", "params", "message"), [
    ("cleanMessages", {"batchSize": 10**12},
     "batchSize (from plugin parameter / dag_run.conf 'batchSize'): 1000000000000 must be 100000 or less; "
     "allowed: 1 to 100000"),
    ("cleanMessages", {"maxAgeDays": 1e308},
     "maxAgeDays (from plugin parameter / dag_run.conf 'maxAgeDays'): 1e+308 must be 36500 or less; "
     "allowed: 0.001 to 36500"),
    ("cleanMessages", {"batchSize": 0}, "0 must be 1 or more; allowed: 1 to 100000"),
    ("sensorStatistics", {"windowHours": 1e308}, "1e+308 must be 8784 or less; allowed: 1 to 8784"),
    ("sensorStatistics", {"lookbackHours": "1e300"}, "allowed: 0 to 8784"),
    ("forecast", {"degree": 10**6}, "1000000 must be 10 or less; allowed: 0 to 10"),
    ("forecast", {"historyDays": 10**9}, "allowed: 2 to 3660"),
    ("alerts", {"maxListed": 10**12}, "allowed: 1 to 10000"),
])
def test_a_runs_options_are_bounded(section, params, message):
    """A run's conf cannot ask for a transaction of 10**12 rows or an age that overflows every date: each
    option has a range, named with the key and the value."""
    from meccano.fleet.options import read_options

    with pytest.raises(ConfigError, match=re.escape(message)):
        read_options(section, load_settings(), params)
