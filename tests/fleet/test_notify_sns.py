"""Alarms and reports through SNS (moto's server, an SQS queue subscribed): the test reads
each published notification back. Raise, no repeat, clear, digest, a publish failure
that loses nothing, the no-topic fallback, and no secret in any log."""

from __future__ import annotations

import logging

import pytest

from meccano.errors import NotificationError
from meccano.fleet.alarms import evaluate_alarms
from meccano.fleet.health import send_health_report
from meccano.fleet.notify import FAILED, LOGGED, PENDING, SENT, Notifier, clean_subject
from meccano.iotdb.clock import db_now
from meccano.settings.config import load_settings
from tests.support import fleet
from tests.support.fleet import SNS_SECRET, ago, announce, register

SECRET = SNS_SECRET

any_iotdb = fleet.any_iotdb  # the MariaDB/SQLite fixture




def _alarms(db):
    return db.query("SELECT device, clearedAt, lastStatus, notifiedRaise, notifiedClear FROM DeviceAlarm "
                    "ORDER BY ID")


def test_raise_no_repeat_clear(any_iotdb, sns, caplog):
    db = any_iotdb
    caplog.set_level(logging.DEBUG)
    settings = load_settings()
    now = db_now(db)
    register(db, {"aa:01": "store1", "aa:02": "store1"})
    announce(db, "aa:01", ago(now, 30))
    announce(db, "aa:02", ago(now, 1))

    run = evaluate_alarms(db, settings)
    assert [e.device for e in run.raised] == ["aa:01"] and not run.cleared
    [(subject, body)] = sns.received()
    assert subject == "[Meccano] ALERT: device aa:01 (store1) is FAIL"
    assert "Device aa:01 of group store1 entered FAIL" in body
    assert f"Last contact: {ago(now, 30):%Y-%m-%d %H:%M:%S}" in body

    for _ in range(3):  # still FAIL: nothing raised, nothing sent
        again = evaluate_alarms(db, settings)
        assert (again.raised, again.cleared, again.published) == ([], [], [])
    assert sns.received() == []
    [alarm] = _alarms(db)
    assert alarm["clearedAt"] is None and alarm["lastStatus"] == "FAIL"
    assert alarm["notifiedRaise"] == run.notification_id

    announce(db, "aa:01", db_now(db))  # it is back
    run = evaluate_alarms(db, settings)
    assert [(e.device, e.status) for e in run.cleared] == [("aa:01", "NORMAL")]
    [(subject, body)] = sns.received()
    assert subject == "[Meccano] CLEAR: device aa:01 (store1) recovered (NORMAL)"
    [alarm] = _alarms(db)
    assert alarm["clearedAt"] is not None and alarm["lastStatus"] == "NORMAL"
    assert alarm["notifiedClear"] == run.notification_id
    assert evaluate_alarms(db, settings).published == [] and sns.received() == []
    assert {r["delivered"] for r in db.query("SELECT delivered FROM Notification")} == {SENT}
    assert SECRET not in caplog.text


def test_thousand_failures_make_one_digest(any_iotdb, sns):
    db = any_iotdb
    settings = load_settings()
    register(db, {f"dev{i:04}": f"store{i % 3}" for i in range(1000)})  # none ever announced: FAIL
    run = evaluate_alarms(db, settings, params={"maxListed": 50})
    assert len(run.raised) == 1000
    [(subject, body)] = sns.received()
    assert subject == "[Meccano] DIGEST: 1000 device(s) FAIL, 0 recovered"
    assert "1000 device(s) entered FAIL, 0 recovered" in body
    assert "group store0:" in body and "dev0000  status FAIL  last contact never" in body
    assert "... and 950 more" in body
    assert db.scalar("SELECT COUNT(*) FROM DeviceAlarm WHERE clearedAt IS NULL") == 1000

    # half recover, one new failure: still one message, a digest of both
    now = db_now(db)
    for i in range(0, 1000, 2):
        announce(db, f"dev{i:04}", now)
    register(db, {"late": "store9"})
    run = evaluate_alarms(db, settings)
    assert (len(run.raised), len(run.cleared)) == (1, 500)
    [(subject, body)] = sns.received()
    assert subject == "[Meccano] DIGEST: 1 device(s) FAIL, 500 recovered"
    assert "late  status FAIL" in body and "dev0000  status NORMAL" in body


def test_publish_failure_fails_and_the_retry_resends(any_iotdb, sns, monkeypatch):
    db = any_iotdb
    register(db, {"aa:09": "store1"})
    monkeypatch.setenv("AWS_ENDPOINTURL", "http://127.0.0.1:9")  # SNS unreachable
    with pytest.raises(NotificationError, match="stays pending") as info:
        evaluate_alarms(db, load_settings())
    assert SECRET not in str(info.value)
    [alarm] = _alarms(db)  # the state change is recorded with its notification
    pending = db.query("SELECT ID, delivered FROM Notification")
    assert [(r["ID"], r["delivered"]) for r in pending] == [(alarm["notifiedRaise"], PENDING)]
    assert sns.received() == []

    monkeypatch.setenv("AWS_ENDPOINTURL", sns.server.endpoint)  # the retry, SNS back
    run = evaluate_alarms(db, load_settings())
    assert run.raised == [] and run.published == [alarm["notifiedRaise"]]
    [(subject, _)] = sns.received()
    assert subject == "[Meccano] ALERT: device aa:09 (store1) is FAIL"
    assert len(_alarms(db)) == 1
    assert db.scalar("SELECT delivered FROM Notification") == SENT


def test_no_topic_logs_and_stores(any_iotdb, monkeypatch, caplog):
    db = any_iotdb
    monkeypatch.delenv("AWS_TOPICARN", raising=False)
    register(db, {"aa:05": "store1"})
    with caplog.at_level(logging.WARNING, logger="meccano.fleet.notify"):
        run = evaluate_alarms(db, load_settings())
    assert len(run.raised) == 1 and run.published == []
    assert "no SNS topic configured" in caplog.text and "ALERT: device aa:05" in caplog.text
    row = db.query("SELECT kind, subject, topic, delivered FROM Notification")[0]
    assert (row["kind"], row["topic"], row["delivered"]) == ("alarm", None, LOGGED)
    assert evaluate_alarms(db, load_settings()).raised == []  # the alarm is stored all the same


def test_health_report_content(any_iotdb, sns):
    db = any_iotdb
    now = db_now(db)
    register(db, {"n1": "storeA", "w1": "storeA", "f1": "storeB", "never": "storeB", "wait": None})
    announce(db, "n1", ago(now, 1))
    announce(db, "w1", ago(now, 10))
    announce(db, "f1", ago(now, 20))
    report = send_health_report(db, load_settings(), now=now)
    assert report.counts == {"WAITING_APPROVE": 1, "NORMAL": 1, "WARNING": 1, "FAIL": 2}
    [(subject, body)] = sns.received()
    assert subject == "[Meccano] Fleet health: 2 FAIL, 1 WARNING of 5 devices"
    last_w1 = f"{ago(now, 10):%Y-%m-%d %H:%M:%S}"
    assert "Group storeA:\n  w1                   WARNING  last contact " + last_w1 in body
    assert "Group storeB:\n  f1                   FAIL" in body
    assert "never                FAIL     last contact never" in body
    assert "n1 " not in body and "  NORMAL           1" in body


def test_failed_health_report_is_marked_and_raises(any_iotdb, sns, monkeypatch):
    db = any_iotdb
    monkeypatch.setenv("AWS_TOPICARN", sns.topic_arn + "-missing")
    with pytest.raises(NotificationError):
        send_health_report(db, load_settings())
    assert db.scalar("SELECT delivered FROM Notification") == FAILED
    assert Notifier(db, load_settings()).pending("health") == []  # the retry sends a fresh one, not this


def test_subject_is_made_sns_safe():
    assert clean_subject("a\nb  é" + "x" * 200).startswith("a b ?")
    assert len(clean_subject("x" * 200)) == 100
