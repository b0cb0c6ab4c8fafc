"""A user who may only trigger DAG runs, through Airflow's REST API: a real API server with the FAB auth
manager, a role holding the trigger permissions only, a JWT from ``POST /auth/token``, MariaDB and SeaweedFS.

What the user asks for in ``dag_run.conf`` cannot widen what a run deletes: a value Airflow's Params
refuse is a 400 at trigger time; a value only the configuration can judge (``days`` below the configured
retention, ``maxAgeDays`` below the configured age) is accepted as a queued run whose first task fails at
once, and nothing is exported, purged or deleted. The created runs' tasks are executed with
``airflow tasks test <dag> <task> <run id>``: the same task code, on the run the user created, with its conf.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from meccano.iotdb.clock import db_now
from tests.support.export import TargetReader, configure_export, db_rows, ledger_entries, new_bucket, seed_facts
from tests.support.fleet import ago, message
from tests.support.web import FAB_AUTH_MANAGER, api_server_env, fab_api_server

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")
ADMIN = ("admin", "admin-pass-for-the-trigger-test")
TRIGGERER = ("trigger-only", "trigger-only-pass-42")
# What FAB needs to POST /api/v2/dags/{dag_id}/dagRuns: create on DAG Runs, read on DAGs, and edit on the
# DAG itself (FabAuthManager.is_authorized_dag asks for PUT on the DAG of any sub-entity it changes).
TRIGGER_PERMISSIONS = [("can_create", "DAG Runs"), ("can_read", "DAGs"),
                       ("can_edit", "DAG:s3_export"), ("can_edit", "DAG:cleanMessages")]


@dataclass
class Api:
    url: str
    env: dict[str, str]
    home: Path
    iotdb: Any
    s3: Any
    bucket: str
    remote: str

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def token(self, user: tuple[str, str]) -> str:
        status, body = self.call("POST", "/auth/token", {"username": user[0], "password": user[1]})
        assert status == 201, body
        return str(body["access_token"])

    def run_task(self, dag_id: str, task_id: str, run_id: str) -> str:
        """The task of the run ``run_id`` executed as a worker would (``airflow tasks test``); its output."""
        done = subprocess.run([AIRFLOW, "tasks", "test", dag_id, task_id, run_id], env=self.env, cwd=self.home,
                              capture_output=True, text=True, timeout=300)
        return done.stdout + done.stderr

    def task_state(self, dag_id: str, run_id: str, task_id: str, token: str) -> str:
        status, body = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}",
                                 token=token)
        assert status == 200, body
        return str(body["state"])


def _environment(home: Path) -> dict[str, str]:
    """This process's Meccano settings (IOTDB, S3, config.yml) with an Airflow home of the server's own."""
    env = api_server_env({k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}, home,
                         "trigger-only-test-jwt-secret-" + "y" * 48)
    env.update({
        "AIRFLOW__CORE__AUTH_MANAGER": FAB_AUTH_MANAGER,
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "MECCANO_PLUGINS_DIR": str(ROOT / "meccano_plugins"),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "include"), os.environ.get("PYTHONPATH", "")) if p),
    })
    return env


@pytest.fixture(scope="module")
def api(mariadb, s3_server, tmp_path_factory) -> Iterator[Api]:
    """One API server for the module: FAB, the shipped plugins' DAGs serialized, an admin, the trigger-only
    user, an IOTDB database in MariaDB and an export target in SeaweedFS."""
    from meccano.iotdb.db import Iotdb
    from meccano.iotdb.schema import ensure_schema
    from meccano.settings.config import load_settings

    home = tmp_path_factory.mktemp("airflow-fab")
    name = f"IOTDB_trigger_{os.getpid()}"
    mariadb.create_database(name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_MECCANO_IOTDB", mariadb.uri(name))
        configure_export(home, mp)
        bucket, remote = new_bucket(s3_server, mp)
        iotdb = Iotdb.from_settings(load_settings())
        ensure_schema(iotdb)
        env = _environment(home)
    try:
        with fab_api_server(env, home, ADMIN, wait=120) as url:
            server = Api(url, env, home, iotdb, s3_server, bucket, remote)
            admin = server.token(ADMIN)
            role = {"name": "TriggerOnly", "actions": [{"action": {"name": a}, "resource": {"name": r}}
                                                       for a, r in TRIGGER_PERMISSIONS]}
            assert server.call("POST", "/auth/fab/v1/roles", role, admin)[0] == 200
            user = {"username": TRIGGERER[0], "password": TRIGGERER[1], "email": "trigger@meccano.test",
                    "first_name": "Trigger", "last_name": "Only", "roles": [{"name": "TriggerOnly"}]}
            assert server.call("POST", "/auth/fab/v1/users", user, admin)[0] == 200
            yield server
    finally:
        iotdb.dispose()
        mariadb.sql(f"DROP DATABASE IF EXISTS `{name}`")


def test_the_trigger_only_user_holds_nothing_but_the_trigger(api):
    token = api.token(TRIGGERER)
    forbidden = [
        ("POST", "/api/v2/dags/deviceHealth/dagRuns", {"logical_date": None}),  # a DAG it was not given
        ("PATCH", "/api/v2/dags/deviceHealth", {"is_paused": True}),
        ("DELETE", "/api/v2/dags/s3_export", None),
        ("POST", "/api/v2/variables", {"key": "purge", "value": "everything"}),
        ("PATCH", "/api/v2/variables/purge", {"key": "purge", "value": "everything"}),
        ("POST", "/api/v2/connections", {"connection_id": "meccano_iotdb", "conn_type": "mysql", "host": "evil"}),
        ("PATCH", "/api/v2/connections/meccano_iotdb", {"connection_id": "meccano_iotdb", "conn_type": "mysql"}),
        ("GET", "/api/v2/connections", None),
        ("GET", "/api/v2/config", None),
        ("POST", "/api/v2/pools", {"name": "iotdb", "slots": 1000}),
        ("PATCH", "/api/v2/pools/iotdb", {"slots": 1000}),
        ("POST", "/api/v2/dags/s3_export/clearTaskInstances", {"dry_run": False}),
        ("POST", "/auth/fab/v1/roles", {"name": "More", "actions": []}),
    ]
    answers = {(method, path): api.call(method, path, body, token)[0] for method, path, body in forbidden}
    assert answers == {key: 403 for key in answers}
    # FAB lets a trigger through only with edit on the DAG, which also pauses and unpauses it (its one
    # patchable field); a DAG it was not given stays out of reach (above).
    status, body = api.call("PATCH", "/api/v2/dags/s3_export", {"is_paused": True}, token)
    assert (status, body["is_paused"]) == (200, True)


def test_s3_export_asking_for_zero_days_is_refused_and_nothing_is_exported_or_purged(api):
    token, admin = api.token(TRIGGERER), api.token(ADMIN)
    old, recent = seed_facts(api.iotdb, recent_rows=20)
    before = db_rows(api.iotdb)
    assert sum(before.values()) == len(old) + len(recent)

    # what Airflow's Params can judge is refused at trigger time
    status, body = api.call("POST", "/api/v2/dags/s3_export/dagRuns", {"logical_date": None, "conf": {"days": -1}},
                            token)
    assert status == 400 and "Invalid input for param days: -1 is less than the minimum of 0" in body["detail"]

    status, body = api.call("POST", "/api/v2/dags/s3_export/dagRuns", {"logical_date": None, "conf": {"days": 0}},
                            token)
    assert status == 200, body
    assert (body["conf"], body["triggering_user_name"]) == ({"days": 0}, TRIGGERER[0])
    run_id = body["dag_run_id"]

    out = api.run_task("s3_export", "plan", run_id)
    assert "dag_run.conf days: 0 is shorter than the configured retention of Facts (1)" in out
    assert api.task_state("s3_export", run_id, "plan", admin) == "failed"  # at once: no retry
    assert db_rows(api.iotdb) == before
    assert ledger_entries(api.iotdb) == []
    assert TargetReader(api.s3.client(), api.bucket, prefix=f"{api.remote}/facts").keys() == []

    # a key s3_export does not declare: refused before the plugin's code runs
    status, body = api.call("POST", "/api/v2/dags/s3_export/dagRuns",
                            {"logical_date": None, "conf": {"purge": True, "where": "1=1"}}, token)
    assert status == 200, body
    out = api.run_task("s3_export", "plan", body["dag_run_id"])
    assert "dag_run.conf purge, where: not a parameter of s3_export:1.0; allowed: dry_run, days, tables" in out
    assert api.task_state("s3_export", body["dag_run_id"], "plan", admin) == "failed"
    assert db_rows(api.iotdb) == before


def test_clean_messages_asking_for_a_shorter_age_is_refused_and_deletes_nothing(api):
    token, admin = api.token(TRIGGERER), api.token(ADMIN)
    now = db_now(api.iotdb)
    kept = {message(api.iotdb, "d1", "PERSISTENT", ago(now, minutes=60), None),
            message(api.iotdb, "d2", "TRANSIENT", ago(now, days=2), None)}  # maxAgeDays 0.001 would delete both

    status, body = api.call("POST", "/api/v2/dags/cleanMessages/dagRuns",
                            {"logical_date": None, "conf": {"maxAgeDays": 0.001}}, token)
    assert status == 200, body
    run_id = body["dag_run_id"]

    out = api.run_task("cleanMessages", "run", run_id)
    assert "maxAgeDays (from plugin parameter / dag_run.conf 'maxAgeDays'): 0.001 is below the configured 30" in out
    assert api.task_state("cleanMessages", run_id, "run", admin) == "failed"  # at once: no retry
    assert {r["ID"] for r in api.iotdb.query("SELECT ID FROM Messages")} == kept
