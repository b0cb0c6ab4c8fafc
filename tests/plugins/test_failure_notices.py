"""A failing plugin tells the administrators once per failed run (moto's SNS server, an SQS
queue subscribed to the topic, read back): after its retries, naming plugin, run, failed
task, the error's last lines without secrets and a link to the run. A retry that succeeds
sends nothing; ``notifyOnFailure: false`` silences a plugin; without a topic the
notification is logged and stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from meccano.fleet.notify import LOGGED, SENT
from tests.support.plugins import write_plugin

SECRET = "moto-Secret-Key-987"
DB_SECRET = "iotdb-Pass-Word-55"

FAILING = f'''
def entrypoint(context):
    raise RuntimeError("step 3 of 3 broke: cannot reach mysql://sm:{DB_SECRET}@db:3306/IOTDB\\n"
                       "password={DB_SECRET} was rejected")
'''

FLAKY = '''
from pathlib import Path

def entrypoint(context):
    marker = Path(context.params["marker"])
    if not marker.exists():
        marker.write_text("first try failed")
        raise RuntimeError("first try fails on purpose")
    return "second try fine"
'''


def _plugin(root: Path, name: str, code: str, **extra) -> None:
    folder = write_plugin(root, f"{name}:1.0", code, engine="native",
                          **{"description": "test", "retries": 1, "retryDelayMinutes": 0.01, **extra})
    (folder / "assets").mkdir()
    (folder / "assets" / "index.html").write_text("<p>test</p>")


@pytest.fixture
def sns(sns_server, monkeypatch):
    sns_server.reset()
    topic, queue = sns_server.topic_with_queue("meccano-admins")
    monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT", raising=False)
    for var, value in {"AWS_TOPICARN": topic, "AWS_ENDPOINTURL": sns_server.endpoint,
                       "AWS_ACCESSKEYID": "testing", "AWS_SECRETACCESSKEY": SECRET, "AWS_REGION": "sa-east-1",
                       "MYSQL_PASSWORD": DB_SECRET}.items():
        monkeypatch.setenv(var, value)
    return lambda: sns_server.received(queue)


def _notifications(db):
    return db.query("SELECT kind, subject, body, delivered FROM Notification WHERE kind = 'plugin_failure'")


def test_failed_run_notifies_once_with_task_error_and_link(tmp_path, sqlite_iotdb, sns, run_plugin_dag):
    _plugin(tmp_path, "brokenReport", FAILING)
    run = run_plugin_dag("brokenReport", tmp_path)
    assert run.state == "failed"
    messages = sns()
    assert len(messages) == 1, messages  # once per run, after the retry, not once per try
    subject, body = messages[0]["Subject"], messages[0]["Message"]
    assert "brokenReport:1.0" in subject and run.run_id in subject
    assert "Failed task: run" in body and f"Run: {run.run_id}" in body
    assert "step 3 of 3 broke" in body and "was rejected" in body  # the error's last lines
    assert DB_SECRET not in body and SECRET not in body and "***" in body
    assert f"/dags/brokenReport/runs/{run.run_id.replace(':', '%3A').replace('+', '%2B')}" in body
    [stored] = _notifications(sqlite_iotdb)
    assert stored["delivered"] == SENT and DB_SECRET not in stored["body"]


def test_retry_that_succeeds_sends_nothing(tmp_path, sqlite_iotdb, sns, run_plugin_dag):
    _plugin(tmp_path, "flaky", FLAKY, parameters={"marker": str(tmp_path / "marker")})
    run = run_plugin_dag("flaky", tmp_path)
    assert run.state == "success"
    assert (tmp_path / "marker").exists()  # it did fail once
    assert sns() == [] and _notifications(sqlite_iotdb) == []


def test_notify_on_failure_false_silences_the_plugin(tmp_path, sqlite_iotdb, sns, run_plugin_dag):
    _plugin(tmp_path, "quietBroken", FAILING, notifyOnFailure=False)
    assert run_plugin_dag("quietBroken", tmp_path).state == "failed"
    assert sns() == [] and _notifications(sqlite_iotdb) == []


def test_without_topic_logged_and_stored(tmp_path, sqlite_iotdb, monkeypatch, run_plugin_dag, caplog):
    monkeypatch.delenv("AWS_TOPICARN", raising=False)
    monkeypatch.setenv("MYSQL_PASSWORD", DB_SECRET)
    _plugin(tmp_path, "brokenNoTopic", FAILING, retries=0)
    caplog.set_level("WARNING")
    assert run_plugin_dag("brokenNoTopic", tmp_path).state == "failed"
    [stored] = _notifications(sqlite_iotdb)
    assert stored["delivered"] == LOGGED and "brokenNoTopic:1.0" in stored["subject"]
    assert "step 3 of 3 broke" in stored["body"] and DB_SECRET not in stored["body"]
    assert "no SNS topic configured" in caplog.text and DB_SECRET not in caplog.text


def test_error_tail_redacts_encoded_secrets_too():
    """The notification's error lines go through the one redaction (redact_text): base64 (a Basic header),
    URL-encoded and JSON-escaped forms of a secret are removed, not only the bare value."""
    import base64
    from urllib.parse import quote

    from meccano.secrets.redaction import redact_text as redact

    secret = 'Notify-Pass/77"x'
    basic = base64.b64encode(f"sm:{secret}".encode()).decode()
    text = f"Authorization: Basic {basic}\nurl=https://h/?p={quote(secret, safe='')}\njson={secret!r}".replace(
        repr(secret), '"Notify-Pass/77\\"x"')
    out = redact(text, [secret])
    assert secret not in out and basic not in out and quote(secret, safe="") not in out
    assert 'Notify-Pass/77\\"x' not in out and "***" in out


def test_notifications_and_storage_errors_redact_every_known_secret(monkeypatch, tmp_path):
    """One list of secrets (meccano.settings.secrets.known_secrets) serves the scripts, the failure notification
    and the export's storage errors: the AWS connection's session token and secret key, the IOTDB password, the
    console token."""
    import json

    from meccano.export.target import describe_storage_error
    from meccano.plugins.failure_notices import error_tail
    from meccano.settings.config import load_settings

    token, aws_secret, console = "Session-Token-Value-31", "Aws-Extra-Secret-42", "Console-Token-Value-53"
    cfg = tmp_path / "config.yml"
    cfg.write_text("default: {}\n")
    monkeypatch.setenv("MECCANO_CONFIG", str(cfg))
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": "AKIA-TEST", "password": "",
        "extra": {"aws_secret_access_key": aws_secret, "aws_session_token": token}}))
    monkeypatch.setenv("AIRFLOW_CONN_MECCANO_IOTDB", f"mysql://sm:{DB_SECRET}@db:3306/IOTDB")
    monkeypatch.setenv("MECCANO_WEB_CONSOLE_TOKEN", console)
    text = f"boto said token={token} key {aws_secret}; db mysql://sm:{DB_SECRET}@db; console {console}"
    for out in (error_tail(RuntimeError(text)), describe_storage_error(RuntimeError(text), "export", load_settings())):
        assert not any(s in out for s in (token, aws_secret, DB_SECRET, console)), out
        assert "boto said" in out


def test_two_dags_on_one_schedule_each_get_their_notice(sqlite_iotdb, sns):
    """DAGs on the same cron share run ids: a stored notice of one DAG's run never stands for another's."""
    from types import SimpleNamespace

    from meccano.plugins.failure_notices import PluginFailureNotifier, RecordFailure

    run_id = "scheduled__2026-12-05T02:00:00+00:00"

    def context(dag_id: str) -> dict:
        dag = SimpleNamespace(dag_id=dag_id, tags=["version:1.0"])
        ti = SimpleNamespace(dag_id=dag_id, run_id=run_id, task_id="run")
        return {"dag": dag, "ti": ti, "run_id": run_id, "exception": RuntimeError(f"{dag_id} broke")}

    RecordFailure()(context("nightlyA"))  # nightlyB's task callback never stored its row
    PluginFailureNotifier().notify(context("nightlyA"))
    PluginFailureNotifier().notify(context("nightlyB"))

    messages = sns()
    assert sorted(m["Subject"].split(" failed")[0] for m in messages) == [
        "Meccano plugin nightlyA:1.0", "Meccano plugin nightlyB:1.0"]
    assert all(f"Run: {run_id}" in m["Message"] for m in messages)
    assert "nightlyA broke" in next(m["Message"] for m in messages if "nightlyA" in m["Subject"])
    stored = sqlite_iotdb.query("SELECT dagId, runId, delivered FROM Notification ORDER BY dagId")
    assert [(r["dagId"], r["runId"], r["delivered"]) for r in stored] == [
        ("nightlyA", run_id, SENT), ("nightlyB", run_id, SENT)]
