"""The DAG factory as Airflow sees it: DagBag over dags/, shipped and fixture plugins."""

from __future__ import annotations

import html
import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from meccano.contract.manifest import load_plugin
from meccano.plugins.discovery import discover
from meccano.plugins.factory import build_dags, invalid_dag_id, minutes_schedule
from meccano.settings.plugins_folder import CHECKOUT_PLUGINS_DIR
from tests.support.schedules import plain_schedule

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parents[1] / "fixtures" / "plugins"


def dagbag(monkeypatch: pytest.MonkeyPatch, plugins: Path) -> DagBag:
    monkeypatch.setenv("MECCANO_PLUGINS_DIR", str(plugins))
    return DagBag(dag_folder=str(ROOT / "dags"), bundle_path=ROOT)


def test_shipped_plugins_one_dag_each_no_import_errors(monkeypatch: pytest.MonkeyPatch):
    bag = dagbag(monkeypatch, CHECKOUT_PLUGINS_DIR)
    assert bag.import_errors == {}
    catalog = discover(CHECKOUT_PLUGINS_DIR)
    assert catalog.invalid == [], [str(p) for load in catalog.invalid for p in load.problems]
    assert set(bag.dag_ids) == {load.manifest.dag_id for load in catalog.active}
    for dag in bag.dags.values():
        assert dag.catchup is False and dag.max_active_runs == 1
        assert "meccano" in dag.tags


def test_bad_plugins_never_hide_good_ones(monkeypatch: pytest.MonkeyPatch):
    bag = dagbag(monkeypatch, FIXTURES)
    assert bag.import_errors == {}
    assert {"goodNative", "goodScript", "shadow"} <= set(bag.dag_ids)
    invalid = {d for d in bag.dag_ids if d.startswith("meccano_invalid_")}
    assert invalid == {invalid_dag_id(FIXTURES / n) for n in (
        "badCron:1.0", "badEnums:1.0", "badJson:1.0", "missingFields:1.0", "missingSource:1.0",
        "nameMismatch:1.0", "unknownField:1.0", "unsafeName:1.0", "wrongTypes:1.0")}
    bad = bag.dags[invalid_dag_id(FIXTURES / "badCron:1.0")]
    assert "invalid" in bad.tags
    assert "minute field: 61 is out of range 0-59" in bad.doc_md
    assert plain_schedule(bad) == "@once"


def test_invalid_plugin_dag_fails_with_its_errors(monkeypatch: pytest.MonkeyPatch, airflow_db, capfd):
    monkeypatch.setenv("MECCANO_PLUGINS_DIR", str(FIXTURES))
    dag_id = invalid_dag_id(FIXTURES / "badEnums:1.0")
    dag = build_dags(FIXTURES, only_dag_id=dag_id)[dag_id]
    run = dag.test()
    assert run.state == "failed"
    out = capfd.readouterr()
    assert "badEnums:1.0: engine: unknown engine 'java'" in out.out + out.err


def test_operators_schedules_and_tags(monkeypatch: pytest.MonkeyPatch):
    dags = build_dags(FIXTURES)
    native, script, shadow = dags["goodNative"], dags["goodScript"], dags["shadow"]
    assert [t.task_type for t in native.tasks] == ["PythonOperator"]
    assert [t.task_type for t in script.tasks] == ["PluginScriptOperator"]
    assert set(native.tags) == {"meccano", "type:worker", "engine:native", "version:1.0"}
    assert plain_schedule(native) == "*/5 * * * *" and native.is_paused_upon_creation is False
    run = native.get_task("run")
    assert run.retries == 2 and run.retry_delay == timedelta(minutes=2) and run.owner == "meccano"
    # disabled: visible, paused and unscheduled
    assert plain_schedule(script) is None and script.is_paused_upon_creation is True and "disabled" in script.tags
    assert script.get_task("run").retries == 0
    assert script.get_task("run").execution_timeout == timedelta(minutes=5)
    assert "version:2.0" in shadow.tags and "shadow:1.0" in shadow.doc_md and "shadow:1.5" in shadow.doc_md
    assert "* documentation: [assets/index.html](/meccano/plugins/goodNative:1.0/docs)" in native.doc_md


def test_script_command_never_contains_a_name_or_path():
    task = build_dags(FIXTURES)["goodScript"].get_task("run")
    assert task.bash_command == 'exec "$MECCANO_PYTHON" "$MECCANO_SCRIPT_RUNNER"'
    assert task.template_fields == ()


def test_parsing_context_builds_only_the_requested_dag():
    assert set(build_dags(FIXTURES, only_dag_id="goodNative")) == {"goodNative"}
    bad = invalid_dag_id(FIXTURES / "badJson:1.0")
    assert bad in build_dags(FIXTURES, only_dag_id=bad)


def test_schedule_from_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    folder = tmp_path / "health:1.0"
    folder.mkdir()
    (folder / "plugin.json").write_text(
        '{"plugin": "health:1.0", "engine": "native", "enabled": true, "schedule": "@hourly",'
        ' "scheduleFromConfig": "warninglimit", "enabledFromConfig": "export.enabled",'
        ' "description": "d", "type": "worker", "executionContext": "master"}')
    (folder / "health:1.0.py").write_text("def entrypoint(context):\n    pass\n")
    monkeypatch.setenv("WARNINGLIMIT", "15")
    assert plain_schedule(build_dags(tmp_path)["health"]) == "*/15 * * * *"
    monkeypatch.setenv("EXPORT_ENABLED", "false")
    dag = build_dags(tmp_path)["health"]
    assert plain_schedule(dag) is None and dag.is_paused_upon_creation is True


@pytest.mark.parametrize(("minutes", "expected"), [
    (1, "*/1 * * * *"), (15, "*/15 * * * *"), (60, "0 * * * *"), (120, "0 */2 * * *"), (30, "*/30 * * * *"),
    (90, timedelta(minutes=90)), (7, timedelta(minutes=7)),
])
def test_minutes_schedule(minutes: int, expected):
    assert minutes_schedule(minutes) == expected


def test_broken_configuration_is_visible_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MYSQL_PORT", "not-a-port")
    dags = build_dags(FIXTURES)
    assert "goodNative" in dags
    assert "MYSQL_PORT" in dags["meccano_config_error"].doc_md


# --- hostile plugin folders: the DagBag stays whole ----------------------------------------------

DAGBAG_SCRIPT = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1], bundle_path=sys.argv[2])
print(json.dumps({"errors": {str(k): str(v)[-500:] for k, v in bag.import_errors.items()},
                  "dags": {d.dag_id: {"doc": d.doc_md or "", "tags": sorted(d.tags),
                                      "params": {k: [d.params.get_param(k).schema, d.params.get_param(k).description]
                                                 for k in d.params}}
                           for d in bag.dags.values()}}))
"""


def test_hostile_folders_each_become_one_failing_dag(tmp_path: Path):
    """A real DagBag in its own process (a hang would be a timeout, not a stuck suite)."""
    import json
    import os
    import subprocess
    import sys

    from meccano.contract.manifest import invalid_dag_id
    from tests.support.hostile import EXPECTED, VALID, build_tree

    root = build_tree(tmp_path)
    env = {**os.environ, "MECCANO_PLUGINS_DIR": str(root), "PYTHONPATH": str(ROOT / "include")}
    out = subprocess.run([sys.executable, "-c", DAGBAG_SCRIPT, str(ROOT / "dags"), str(ROOT)], env=env,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    bag = json.loads(out.stdout.strip().splitlines()[-1])
    assert bag["errors"] == {}
    dags = bag["dags"]
    assert set(VALID) <= set(dags)
    invalid = {d for d in dags if d.startswith("meccano_invalid_")}
    assert invalid == {invalid_dag_id(root / name) for name in EXPECTED}  # one each: clash:1.0 / clash_1_0 apart
    assert len(dags) == len(VALID) + len(EXPECTED)
    for name, (field_name, reason) in EXPECTED.items():
        doc = dags[invalid_dag_id(root / name)]["doc"]
        assert f"{html.escape(name)}: {field_name}: " in doc and html.escape(reason) in doc, (name, doc)
    for dag in dags.values():
        assert all(len(tag) <= 100 for tag in dag["tags"])
        assert len(dag["doc"]) < 100_000
    assert dags["withParams"]["params"]["windowHours"] == [{"type": "integer", "minimum": 1, "maximum": 720},
                                                           "hours of readings"]  # the trigger form's text
    assert dags["withParams"]["params"]["mode"] == [{"type": "string", "enum": ["fast", "full"]}, None]


def test_docs_page_is_linked_never_read_and_a_link_or_pipe_is_named(tmp_path: Path):
    """The parse reads nothing of the page: a 50 MB page, a named pipe or a link costs it nothing and never blocks;
    a page the web view would not serve (a link, a pipe) is not linked and is a warning that says why."""
    folder = tmp_path / "docs:1.0"
    folder.mkdir()
    (folder / "plugin.json").write_text(
        '{"plugin": "docs:1.0", "engine": "native", "enabled": true, "schedule": "@daily",'
        ' "description": "d", "type": "worker", "executionContext": "master"}')
    (folder / "docs:1.0.py").write_text("def entrypoint(context):\n    pass\n")
    (folder / "assets").mkdir()
    page = folder / "assets" / "index.html"
    with open(page, "wb") as handle:
        handle.write(b"<p>start</p>")
        handle.truncate(50 * 1024 * 1024)
    doc = build_dags(tmp_path)["docs"].doc_md
    assert "<p>start</p>" not in doc and "[assets/index.html](/meccano/plugins/docs:1.0/docs)" in doc
    for make, kind in ((lambda: page.symlink_to("/dev/zero"), "a symbolic link"),
                       (lambda: os.mkfifo(page), "a named pipe")):
        page.unlink()
        make()
        doc = build_dags(tmp_path)["docs"].doc_md
        assert "documentation" not in doc
        (warning,) = load_plugin(folder).warnings
        assert str(warning).startswith(f"docs:1.0: assets/index.html: is {kind}, not a regular file; the web view "
                                       "does not serve it")
    page.unlink()
    shutil.rmtree(folder / "assets")
    (folder / "assets").symlink_to(tmp_path)
    (warning,) = load_plugin(folder).warnings
    assert str(warning).startswith("docs:1.0: assets: is a symbolic link, not a folder")
    assert "documentation" not in build_dags(tmp_path)["docs"].doc_md


PARAMS_PLUGIN = """
import json
from pathlib import Path


def entrypoint(context):
    Path(context.folder, "seen.json").write_text(json.dumps(context.params, sort_keys=True))
"""


def test_parameters_are_params_validated_before_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        airflow_db):
    import json
    import shutil

    from tests.support.hostile import FIXTURES as HOSTILE

    folder = tmp_path / "withParams:1.0"
    shutil.copytree(HOSTILE / "withParams:1.0", folder)
    (folder / "withParams:1.0.py").write_text(PARAMS_PLUGIN)
    monkeypatch.setenv("MECCANO_PLUGINS_DIR", str(tmp_path))
    dag = build_dags(tmp_path, only_dag_id="withParams")["withParams"]
    assert dag.params["windowHours"] == 24 and dag.params["mode"] == "fast"
    run = dag.test(run_conf={"windowHours": 48})
    assert run.state == "success"
    assert json.loads((folder / "seen.json").read_text()) == {"windowHours": 48, "mode": "fast"}
    (folder / "seen.json").unlink()
    # a key plugin.json does not declare: the run fails before the plugin runs (Airflow itself would pass it on)
    assert dag.test(run_conf={"windowHours": 48, "extra": "dropped"}).state == "failed"
    assert not (folder / "seen.json").exists()
    with pytest.raises(Exception, match="windowHours") as err:
        dag.test(run_conf={"windowHours": 0})
    assert "ParamValidationError" in type(err.value).__name__ or "Invalid input" in str(err.value)
    assert not (folder / "seen.json").exists()  # never ran


def test_missing_named_config_file_is_a_config_error_dag_not_defaults(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MECCANO_CONFIG", str(tmp_path / "gone.yml"))
    monkeypatch.setenv("TZ", "Mars/Olympus")
    dags = build_dags(FIXTURES)
    assert "goodNative" in dags
    doc = dags["meccano_config_error"].doc_md
    assert "gone.yml (named by environment variable MECCANO_CONFIG): configuration file not found" in doc
