"""MYSQL_CONNECTIONLIMIT is not silent: it sizes the Airflow pool 'iotdb' that every plugin task takes a
slot of, so at most that many IOTDB tasks run at once across the cluster."""

from __future__ import annotations

import json
import subprocess
import sys

from meccano.settings.config import load_settings
from meccano.settings.pool import IOTDB_POOL, sync_pool


def test_every_plugin_task_takes_an_iotdb_slot():
    from meccano.plugins.factory import build_dags

    dags = build_dags()
    plugin_tasks = [t for d in dags.values() if "invalid" not in d.tags for t in d.tasks]
    assert plugin_tasks and {t.pool for t in plugin_tasks} == {IOTDB_POOL}


def test_pool_sync_creates_and_resizes_the_pool(airflow_db):
    def slots() -> int:
        out = subprocess.run([sys.executable, "-m", "airflow", "pools", "get", IOTDB_POOL, "-o", "json"],
                             capture_output=True, text=True, timeout=180, check=True).stdout
        return int(json.loads(out)[0]["slots"])

    sync_pool(load_settings(env={"MYSQL_CONNECTIONLIMIT": "4"}))
    assert slots() == 4
    sync_pool(load_settings(env={"MYSQL_CONNECTIONLIMIT": "7"}))
    assert slots() == 7
