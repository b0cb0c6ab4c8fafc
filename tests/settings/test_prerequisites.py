"""What plugin tasks need (the ``iotdb`` pool, the buckets) is created by every set-up path and named,
where an operator looks, when it is missing: ``db check``, ``config show``, the Meccano page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from meccano.settings.config import load_settings
from meccano.settings.prerequisites import SETUP_COMMAND, missing_prerequisites, required_buckets, wanted_buckets

ROOT = Path(__file__).resolve().parents[2]


def _no_bucket_problem(bucket: str, conn_id: str) -> None:
    return None


def test_a_missing_pool_is_named_with_the_command_that_creates_it():
    settings = load_settings()
    missing = missing_prerequisites(settings, lambda name: None, _no_bucket_problem)
    assert [m.where for m in missing] == ["pool 'iotdb'"]
    assert SETUP_COMMAND in missing[0].fix and "scheduled" in missing[0].message
    assert str(missing[0]).startswith("MISSING pool 'iotdb': ")


def test_a_pool_of_the_wrong_size_and_a_broken_lookup_are_named():
    settings = load_settings()
    wrong = missing_prerequisites(settings, lambda name: 3, _no_bucket_problem)
    assert "it has 3 slots" in wrong[0].message and "pool sync" in wrong[0].fix

    def broken(name: str) -> int:
        raise RuntimeError("no such table: slot_pool")

    failed = missing_prerequisites(settings, broken, _no_bucket_problem)
    assert "no such table: slot_pool" in failed[0].message and "airflow db migrate" in failed[0].fix
    assert missing_prerequisites(settings, lambda name: settings.mysql.connection_limit, _no_bucket_problem) == []


def test_a_missing_plugin_user_is_named_with_the_step_that_creates_it(monkeypatch):
    monkeypatch.setenv("MECCANO_PLUGIN_RUN_AS", "meccano-nobody")
    settings = load_settings()
    from meccano.scripts.isolation import isolation_missing

    assert missing_prerequisites(settings, lambda name: settings.mysql.connection_limit, _no_bucket_problem) == []
    missing = isolation_missing(settings)  # what db check, config show and the page add for script plugins
    assert [m.where for m in missing] == ["a usable OS user for plugins.runAs ('meccano-nobody')"]
    assert "scripts/plugin-user.sh" in missing[0].fix and "useradd" in missing[0].fix


def test_buckets_of_s3_targets_only(monkeypatch):
    monkeypatch.setenv("EXPORT_BUCKET", "ml-iot")
    monkeypatch.setenv("MECCANO_REPORTS_DIR", "s3://reports-bucket/meccano")
    assert required_buckets(load_settings()) == ["ml-iot", "reports-bucket"]
    monkeypatch.setenv("EXPORT_BUCKET", "file:///srv/export")
    monkeypatch.setenv("MECCANO_REPORTS_DIR", "/srv/reports")
    assert required_buckets(load_settings()) == []


def test_the_remote_log_bucket_is_wanted_with_its_own_connection(monkeypatch):
    monkeypatch.setenv("EXPORT_BUCKET", "ml-iot")
    monkeypatch.setenv("MECCANO_REPORTS_DIR", "/srv/reports")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOGGING", "False")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER", "s3://task-logs/airflow")
    assert [b for b, _ in wanted_buckets(load_settings())] == ["ml-iot"]  # remote logging off: not wanted
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOGGING", "True")
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID", "logs_conn")
    assert wanted_buckets(load_settings())[1] == ("task-logs", "logs_conn")
    missing = missing_prerequisites(load_settings(), lambda name: load_settings().mysql.connection_limit,
                                    lambda bucket, conn: "it does not exist" if conn == "logs_conn" else None)
    assert [m.where for m in missing] == ["bucket 'task-logs'"]
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER", "s3://ml-iot/logs")  # one bucket, named once
    assert [b for b, _ in wanted_buckets(load_settings())] == ["ml-iot"]


def _fresh_env(tmp_path: Path, s3_server) -> dict[str, str]:
    home = tmp_path / "airflow"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MECCANO_", "EXPORT_", "PYTEST"))}
    env.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "MECCANO_IOTDB_SQLITE": str(tmp_path / "iotdb.sqlite"),
        "MECCANO_PLUGINS_DIR": str(ROOT / "meccano_plugins"),
        "EXPORT_BUCKET": "prereq-export", "MECCANO_REPORTS_DIR": str(tmp_path / "reports"),
        "AIRFLOW_CONN_AWS_DEFAULT": s3_server.connection_uri(),
        # Airflow's remote task logs go to S3: their bucket is a prerequisite like the export's
        "AIRFLOW__LOGGING__REMOTE_LOGGING": "True", "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": "aws_default",
        "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": "s3://prereq-logs/airflow-logs",
    })
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=300,
                          cwd=env["AIRFLOW_HOME"])


@pytest.mark.services
def test_fresh_airflow_after_only_db_migrate(tmp_path: Path, s3_server):
    """Nothing but ``airflow db migrate`` ran: ``db check`` and ``config show`` fail naming the pool and the
    bucket with the command that creates them; ``db upgrade`` creates both, saying each step; then all is well."""
    env = _fresh_env(tmp_path, s3_server)
    migrated = _run(env, "-m", "airflow", "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    for command in (("db", "check"), ("config", "show")):
        done = _run(env, "-m", "meccano", *command)
        assert done.returncode == 1, (command, done.stdout[-1500:], done.stderr[-1500:])
        assert "MISSING pool 'iotdb'" in done.stderr and SETUP_COMMAND in done.stderr, done.stderr[-1500:]
        assert "MISSING bucket 'prereq-export': it does not exist" in done.stderr, done.stderr[-1500:]
        assert "MISSING bucket 'prereq-logs': it does not exist" in done.stderr, done.stderr[-1500:]

    upgraded = _run(env, "-m", "meccano", "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr[-2000:]
    out = upgraded.stdout
    assert "step 1 of 2: the IOTDB schema" in out and "step 2 of 2" in out
    assert "bucket prereq-export (1 of 2): created" in out and "pool 'iotdb': 10 slots" in out
    assert "bucket prereq-logs (2 of 2): created" in out
    for bucket in ("prereq-export", "prereq-logs"):
        assert s3_server.client().head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    pools = json.loads(_run(env, "-m", "airflow", "pools", "get", "iotdb", "-o", "json").stdout)
    assert int(pools[0]["slots"]) == 10

    for command in (("db", "check"), ("config", "show")):
        done = _run(env, "-m", "meccano", *command)
        assert done.returncode == 0, (command, done.stderr[-1500:])
        assert "MISSING" not in done.stderr and "prerequisites: what plugin tasks need is there" in done.stdout


def test_the_meccano_page_shows_what_is_missing_at_the_top(airflow_db, sqlite_iotdb, tmp_path, monkeypatch):
    from airflow.models.pool import Pool

    from meccano.iotdb.schema_migrations import downgrade
    from meccano.web import setup
    from tests.support.web import admin_token, web_client

    monkeypatch.setenv("MECCANO_PLUGINS_DIR", str(tmp_path))
    monkeypatch.setenv("MECCANO_REPORTS_DIR", str(tmp_path / "reports"))
    Pool.delete_pool("iotdb") if Pool.get_pool("iotdb") else None
    setup._cache.clear()
    page = web_client(admin_token()).get("/meccano/")
    assert page.status_code == 200
    body = page.text
    banner = body.index('<section id=setup')
    assert banner < body.index("<h1>Meccano plugins</h1>")
    assert "<strong>pool &#39;iotdb&#39;</strong> is missing" in body and SETUP_COMMAND in body
    # the plugins folder holds no plugin: named with the setting and the command that fills it
    assert f"<strong>plugins folder {tmp_path}</strong> is missing" in body
    assert "holds no plugin folder (set by MECCANO_PLUGINS_DIR)" in body and "meccano install-dags" in body

    monkeypatch.setenv("MECCANO_PLUGINS_DIR", str(ROOT / "meccano_plugins"))
    Pool.create_or_update_pool("iotdb", load_settings().mysql.connection_limit, "test", include_deferred=False)
    setup._cache.clear()
    assert "<section id=setup" not in web_client(admin_token()).get("/meccano/").text

    downgrade(sqlite_iotdb)  # one revision back: a migration is pending
    setup._cache.clear()
    body = web_client(admin_token()).get("/meccano/").text
    assert "<strong>IOTDB schema migrations</strong> is missing: 1 pending" in body and SETUP_COMMAND in body


def test_missing_lines_never_carry_url_credentials(monkeypatch):
    """``EXPORT_BUCKET=s3://KEY:secret@bucket`` (and the report store's URL): the MISSING line names the bucket,
    never the key or secret before the ``@``, as ``config show`` masks them in the settings it prints."""
    monkeypatch.setenv("EXPORT_BUCKET", "s3://AKIAFIXTURE:Export-Secret-9@export-bucket/prefix")
    monkeypatch.setenv("MECCANO_REPORTS_DIR", "s3://u:Reports-Secret-7@reports-bucket/meccano")
    settings = load_settings()
    assert required_buckets(settings) == ["export-bucket", "reports-bucket"]
    missing = missing_prerequisites(settings, lambda name: settings.mysql.connection_limit,
                                    lambda bucket, conn_id: f"{bucket} does not exist")
    text = "\n".join(map(str, missing))
    assert "MISSING bucket 'export-bucket': export-bucket does not exist" in text
    assert "Export-Secret-9" not in text and "Reports-Secret-7" not in text and "AKIAFIXTURE" not in text


def test_a_missing_line_masks_a_url_it_quotes():
    from meccano.settings.prerequisites import missing

    problem = missing("IOTDB connection", "mysql://sm:Quoted-Secret-3@db:3306 refused", "fix it")
    line = str(problem)
    assert line == "MISSING IOTDB connection: mysql://sm:***@db:3306 refused. Fix: fix it"
    assert problem.as_json() == {"severity": "error", "where": "IOTDB connection",
                                 "message": "mysql://sm:***@db:3306 refused", "fix": "fix it"}
