"""The original's in-process node.js plugins (``exports.entrypoint``, ``require('../config')``, ``../mysql``,
``../aws``) run as they are, through the shipped runner, under the same supervision as every script plugin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from meccano.cli.main import main
from meccano.scripts.environment import SCRIPT_RUNNER
from meccano.scripts.original_node import NODE_RUNNER, is_in_process, runner_problem

ORIGINAL = Path(__file__).parents[1] / "fixtures" / "original_install"
SECRET = "fixture-node-aws-secret-value"


def _plugin(tmp_path: Path, source: str) -> Path:
    folder = tmp_path / "plugins" / "p:1.0"
    folder.mkdir(parents=True)
    (folder / "p:1.0.js").write_text(source)
    return folder / "p:1.0.js"


def _run(script: Path, timeout_seconds: float = 60, **extra: str) -> subprocess.CompletedProcess[str]:
    """The Python runner, as the script engines start it, with the node runner selected."""
    env = {**extra, "PATH": os.environ["PATH"], "MECCANO_INTERPRETER": "node", "MECCANO_NODE_RUNNER": str(NODE_RUNNER),
           "MECCANO_PLUGIN_SOURCE": str(script), "MECCANO_TIMEOUT_SECONDS": str(timeout_seconds),
           "MECCANO_KILL_GRACE_SECONDS": "1", "MYSQL_PORT": "3306", "WARNINGLIMIT": "30"}
    return subprocess.run([sys.executable, SCRIPT_RUNNER], env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def test_the_runner_has_its_npm_packages():
    assert runner_problem() is None  # scripts/install-node-deps.sh ran (make test)


def test_only_original_modules_take_the_runner(tmp_path):
    assert is_in_process(ORIGINAL / "plugins" / "helloNode:1.0" / "helloNode:1.0.js")
    assert not is_in_process(_plugin(tmp_path, "console.log(process.env.MYSQL_HOST);\n"))


def test_the_minimal_plugin_of_the_original_readme_runs(tmp_path):
    done = _run(ORIGINAL / "plugins" / "helloNode:1.0" / "helloNode:1.0.js")
    assert (done.returncode, done.stdout) == (0, "hello from the ServiceManager\n")


def test_config_is_the_original_shape_and_callbacks_are_awaited(tmp_path):
    script = _plugin(tmp_path, """
var config = require('../config');
exports.entrypoint = function () {
  setTimeout(function () {
    console.log(config.TYPE, config.WARNINGLIMIT, config.warninglimit, config.mysql.port);
  }, 200);
  return new Promise(function (resolve) { setTimeout(function () { console.log('promise'); resolve(); }, 400); });
};
""")
    done = _run(script)
    assert (done.returncode, done.stdout) == (0, "MASTER 30 30 3306\npromise\n")


def test_an_error_in_a_callback_fails_the_run(tmp_path):
    script = _plugin(tmp_path, "exports.entrypoint = function () { setTimeout(function () { "
                               "throw new Error('no table'); }, 10); };\n")
    done = _run(script)
    assert done.returncode == 1
    assert "[meccano] the plugin failed: Error: no table" in done.stdout


def test_a_module_without_entrypoint_is_named(tmp_path):
    done = _run(_plugin(tmp_path, "var config = require('../config');\n"))
    assert done.returncode == 1
    assert "p:1.0.js does not export entrypoint(); an original in-process plugin sets exports.entrypoint" in done.stdout


def test_the_time_limit_stops_a_plugin_that_never_finishes(tmp_path):
    script = _plugin(tmp_path, "exports.entrypoint = function () { setInterval(function () {}, 1000); };\n")
    done = _run(script, timeout_seconds=2)
    assert done.returncode == 124
    assert "[meccano] plugin timed out after 2 s: SIGTERM to its processes" in done.stdout


def test_mysql_on_the_demos_sqlite_iotdb_is_named(tmp_path):
    script = _plugin(tmp_path, "var mysql = require('../mysql');\n"
                               "exports.entrypoint = function () { mysql.query('SELECT 1', function () {}); };\n")
    done = _run(script, MECCANO_IOTDB_SQLITE=str(tmp_path / "iotdb.sqlite"))
    assert done.returncode == 1
    assert "require('../mysql'): the IOTDB here is the demo's SQLite file (MECCANO_IOTDB_SQLITE)" in done.stdout


@pytest.fixture
def sns(sns_server, monkeypatch):
    sns_server.reset()
    topic, queue = sns_server.topic_with_queue("meccano-admins")
    monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT", raising=False)
    for key, value in {"AWS_TOPICARN": topic, "AWS_ENDPOINTURL": sns_server.endpoint, "AWS_ACCESSKEYID": "testing",
                       "AWS_SECRETACCESSKEY": SECRET, "AWS_REGION": "sa-east-1"}.items():
        monkeypatch.setenv(key, value)
    return sns_server, topic, queue


@pytest.mark.services
def test_migrated_node_plugins_query_facts_and_publish(tmp_path, iotdb, sns, run_plugin_dag, monkeypatch, capfd):
    server, topic, queue = sns
    target = tmp_path / "meccano"
    assert main(["migrate", "apply", str(ORIGINAL), "--env-file", str(ORIGINAL / "bash_profile"),
                 "--to", str(target)]) == 1  # badPlugin:1.0 needs a change
    monkeypatch.setenv("MECCANO_CONFIG", str(target / "config" / "config.yml"))
    monkeypatch.setenv("MECCANO_ENV", "prod")  # the IOTDB: the Airflow connection of the iotdb fixture
    iotdb.execute("INSERT INTO Facts (channel, year, month, day, week_day, hour, minute, second, device_group, "
                  "device, sensor, data) VALUES ('c', 2026, 1, 1, 4, 0, 0, 0, 'g', 'aa:01', 1, 1), "
                  "('c', 2026, 1, 1, 4, 0, 0, 1, 'g', 'aa:01', 1, 2), "
                  "('c', 2026, 1, 1, 4, 0, 0, 2, 'g', 'aa:02', 1, 3)")
    capfd.readouterr()
    run = run_plugin_dag("factsReport", root=target / "meccano_plugins")
    out = capfd.readouterr()
    text = out.out + out.err
    assert run.state == "success"
    assert "facts: 3 from 2 devices" in text and f"published to {topic}" in text
    assert [(m["Subject"], m["Message"]) for m in server.received(queue)] == [("Facts report",
                                                                                "facts: 3 from 2 devices")]
    assert SECRET not in text
    run = run_plugin_dag("helloNode", root=target / "meccano_plugins")
    assert run.state == "success" and "hello from the ServiceManager" in capfd.readouterr().out
