"""Every known secret reaches Airflow's masker: a native plugin that logs each secret alone, in base64 and inside
an exception leaves none of them in its task log, read back through Airflow's task-log API.

A real deployment on bare processes (``tests/support/ha/cluster.py``: PostgreSQL metadata, an API server, a
dag-processor and a scheduler with the LocalExecutor), so the log is the one Airflow's supervisor wrote.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.postgres import Postgres
from tests.support.ha.cluster import Cluster, poll

pytestmark = [pytest.mark.ha, pytest.mark.services]

WAIT = 300  # seconds: a safety net against hangs on a loaded 2-core machine, not a measured limit
SECRETS = {
    "mysql": "Mysql-Pass-Word-8431",
    "aws_key": "Aws-Secret-Key-Value-2209",
    "console": "Console-Token-Value-7765",
    "session": "Session-Token-Value-5120",
    "iotdb": "Iotdb-Conn-Pass-6643",
}
PLUGIN = '''"""Logs every secret it can reach, then fails with one in its error."""

import base64

from meccano.settings.connections import iotdb_connection


def entrypoint(context):
    s = context.settings
    extra = context.aws_connection().extra_dejson
    values = {"mysql": s.mysql.password.get(), "aws_key": s.aws.secret_access_key.get(),
              "console": s.web.console_token.get(), "session": extra["aws_session_token"],
              "iotdb": iotdb_connection(s).password}
    for name, value in values.items():
        context.log.info("alone %s: %s", name, value)
        print(f"printed {name}: {value}")
        context.log.info("base64 %s: %s", name, base64.b64encode(value.encode()).decode())
    raise ValueError(f"boom: the IOTDB refused {values['mysql']}")
'''


def _write_plugin(root: Path) -> None:
    folder = root / "leaky:1.0"
    folder.mkdir(parents=True)
    (folder / "plugin.json").write_text(json.dumps({
        "plugin": "leaky:1.0", "engine": "native", "enabled": False, "schedule": "@daily",
        "description": "logs secrets (masking test)", "type": "worker", "executionContext": "master",
        "retries": 0, "notifyOnFailure": False}))
    (folder / "leaky:1.0.py").write_text(PLUGIN)


@pytest.fixture(scope="module")
def cluster(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("masking")
    plugins, home = base / "meccano_plugins", base / "airflow_home"
    empty = base / "airflow_plugins"
    for folder in (plugins, home, empty):
        folder.mkdir()
    _write_plugin(plugins)
    postgres.psql("CREATE DATABASE airflow_masking OWNER airflow")
    dsn = f"host=127.0.0.1 port={postgres.port} dbname=airflow_masking user=airflow password={postgres.password}"
    extra = {
        "MYSQL_PASSWORD": SECRETS["mysql"], "AWS_SECRETACCESSKEY": SECRETS["aws_key"],
        "MECCANO_WEB_CONSOLE_TOKEN": SECRETS["console"],
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({"conn_type": "aws", "login": "AKIA-MASKING-TEST", "extra": {
            "aws_secret_access_key": SECRETS["aws_key"], "aws_session_token": SECRETS["session"]}}),
        "AIRFLOW_CONN_MECCANO_IOTDB": f"mysql://sm:{SECRETS['iotdb']}@127.0.0.1:1/IOTDB",
        "MECCANO_IOTDB_SQLITE": str(base / "iotdb.sqlite"),
        # an empty Airflow plugins folder: the task's own start (run_native) registers the secrets; the web
        # view (the package's entry point) registers them too in a process that loads the plugins
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(empty),
    }
    ha = Cluster(home=home, plugins_dir=plugins, db_uri=postgres.uri("airflow_masking"), dsn=dsn, extra_env=extra)
    try:
        ha.migrate_and_start_services(WAIT)
        ha.start_scheduler("scheduler-1")
        yield ha
    finally:
        ha.stop_all()
        poll(lambda: not ha.group_alive(), 30, "every process the cluster started to exit", interval=0.5)


def test_a_native_plugin_cannot_log_a_secret(cluster: Cluster) -> None:
    ha = cluster
    poll(lambda: ha.query("SELECT 1 FROM dag WHERE dag_id = 'leaky'"), WAIT, "the leaky DAG to be parsed")
    ha.api("PATCH", "/dags/leaky", {"is_paused": False})
    run_id = ha.api("POST", "/dags/leaky/dagRuns", {"logical_date": None})["dag_run_id"]

    def finished() -> str | None:
        rows = ha.query("SELECT state FROM dag_run WHERE dag_id = 'leaky' AND run_id = %s", run_id)
        return rows[0][0] if rows and rows[0][0] in ("success", "failed") else None

    assert poll(finished, WAIT, "the leaky run to end", interval=2) == "failed"
    logs = ha.api("GET", f"/dags/leaky/dagRuns/{run_id}/taskInstances/run/logs/1?full_content=true")
    text = json.dumps(logs)
    for name in SECRETS:  # the plugin did log each one, three ways, and the error
        assert f"alone {name}: ***" in text and f"printed {name}: ***" in text, (name, text[-3000:])
        assert f"base64 {name}: ***" in text, (name, text[-3000:])
    assert "boom: the IOTDB refused ***" in text, text[-3000:]
    for name, value in SECRETS.items():
        encoded = base64.b64encode(value.encode()).decode()
        assert value not in text and encoded not in text, f"{name} leaked into the task log"
