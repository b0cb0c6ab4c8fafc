"""Script and native engines: no shell interpretation, clear errors, secrets masked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from meccano.errors import PluginError
from meccano.plugins.factory import build_dags
from meccano.scripts.engines import interpreter_path
from tests.services.mariadb import PASSWORD
from tests.support.plugins import write_plugin


def test_paths_with_shell_characters_are_not_interpreted(tmp_path: Path, run_plugin_dag, iotdb, plugin_shared):
    root = tmp_path / "odd $HOME; touch pwned `id` 'q'"
    marker = plugin_shared / "ran.txt"  # the script runs as the plugin user: a folder it may write
    code = (f"import os, pathlib\npathlib.Path({str(marker)!r}).write_text(os.environ['MECCANO_PLUGIN_DIR'] + '|' "
            "+ os.environ['MECCANO_PLUGIN'] + '|' + os.getcwd())\n")
    folder = write_plugin(root, "shelly:1.0", code)
    run = run_plugin_dag("shelly", root)
    assert run.state == "success"
    plugin_dir, plugin, cwd = marker.read_text().split("|")
    # it ran in its run folder's copy of the plugin folder (the deployed one is never written)
    assert plugin == "shelly:1.0" and plugin_dir == cwd and Path(cwd).name == folder.name
    assert Path(cwd).parent.name.startswith("meccano-plugin-run-")
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_script_env_carries_original_variables_and_masks_password(tmp_path: Path, run_plugin_dag, iotdb, capfd):
    code = ("import os\nprint('PW=' + os.environ['MYSQL_PASSWORD'])\n"
            "for k in ('MYSQL_HOST','MYSQL_PORT','MYSQL_USER','MYSQL_DATABASE','MECCANO_LOGICAL_DATE',"
            "'MECCANO_REPORT_DIR'):\n    assert os.environ[k], k\n")
    write_plugin(tmp_path, "leaky:1.0", code)
    run = run_plugin_dag("leaky", tmp_path)
    assert run.state == "success"
    out = capfd.readouterr()
    assert "PW=***" in out.out + out.err
    assert PASSWORD not in out.out + out.err


def test_missing_interpreter_says_how_to_install(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(PluginError, match=r"needs `Rscript`.*apt-get install r-base-core"):
        interpreter_path("R")
    with pytest.raises(PluginError, match=r"needs `node`.*apt-get install nodejs.*scripts/install-node-deps.sh"):
        interpreter_path("nodejs")


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed on this machine")
def test_nodejs_script_plugin_runs(tmp_path: Path, run_plugin_dag, iotdb, plugin_shared):
    marker = plugin_shared / "node.txt"
    write_plugin(tmp_path, "nodey:1.0",
                 f"require('fs').writeFileSync({json.dumps(str(marker))}, process.env.MYSQL_DATABASE);",
                 engine="nodejs", ext=".js")
    assert run_plugin_dag("nodey", tmp_path).state == "success"
    assert marker.read_text().startswith("IOTDB_")


def test_native_plugin_without_entrypoint_fails_clearly(tmp_path: Path, run_plugin_dag, capfd):
    write_plugin(tmp_path, "noentry:1.0", "def main(context):\n    pass\n", engine="native")
    run = run_plugin_dag("noentry", tmp_path)
    assert run.state == "failed"
    out = capfd.readouterr()
    assert "noentry:1.0: noentry:1.0.py must define a function `entrypoint(context)`" in out.out + out.err


def test_native_tasks_are_chained_and_share_results(tmp_path: Path, run_plugin_dag):
    folder = write_plugin(tmp_path, "chain:1.0",
                          "def first(context):\n    return 21\n"
                          "def second(context):\n    return context.xcom_pull('first') * 2\n", engine="native")
    spec = json.loads((folder / "plugin.json").read_text())
    spec["tasks"] = ["first", "second"]
    (folder / "plugin.json").write_text(json.dumps(spec))
    dag = build_dags(tmp_path, only_dag_id="chain")["chain"]
    assert [t.task_id for t in dag.tasks] == ["first", "second"]
    assert dag.get_task("second").upstream_task_ids == {"first"}
    run = run_plugin_dag("chain", tmp_path)
    assert run.state == "success"
    ti = next(t for t in run.get_task_instances() if t.task_id == "second")
    assert ti.xcom_pull(task_ids="second") == 42


def test_a_multi_task_report_publishes_only_what_its_last_task_wrote(tmp_path: Path, run_plugin_dag, monkeypatch,
                                                                      caplog):
    """Tasks may run on different workers: files an earlier task leaves in its report folder would exist on
    one host only, so they are discarded (with a warning), and the last task starts with an empty folder."""
    from meccano.reports.store import ReportStore
    from meccano.settings.config import load_settings

    monkeypatch.setenv("MECCANO_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    code = ("from meccano.reports import charts\n"
            "def first(context):\n"
            "    charts.no_data_image(context.report_dir / 'output.png', title='first')\n"
            "    (context.report_dir / 'first.csv').write_text('a\\n1\\n')\n"
            "def second(context):\n"
            "    assert list(context.report_dir.iterdir()) == [], 'the last task starts empty'\n"
            "    charts.no_data_image(context.report_dir / 'output.png', title='second')\n")
    folder = write_plugin(tmp_path / "plugins", "twostep:1.0", code, engine="native")
    spec = json.loads((folder / "plugin.json").read_text())
    spec.update(tasks=["first", "second"], type="report")
    (folder / "plugin.json").write_text(json.dumps(spec))
    (folder / "assets").mkdir()
    (folder / "assets" / "index.html").write_text("<p>t</p>")
    caplog.set_level("WARNING")
    run = run_plugin_dag("twostep", tmp_path / "plugins")
    assert run.state == "success"
    [entry] = ReportStore.from_settings(load_settings()).history_of("twostep")
    assert entry.files == ("output.png",)  # first.csv, written by the first task, is not published
    assert "only the last task's report files are published" in caplog.text


@pytest.mark.parametrize("engine", ["python", "native"])
def test_a_conf_key_the_plugin_does_not_declare_fails_the_run_before_its_code_runs(tmp_path: Path, run_plugin_dag,
                                                                                 capfd, engine, plugin_shared):
    marker = plugin_shared / "ran.json"  # a script (another OS user) writes where that user may
    if engine == "python":
        code = f"import os, pathlib\npathlib.Path({str(marker)!r}).write_text(os.environ['MECCANO_PARAMETERS'])\n"
    else:
        code = (f"import json, pathlib\ndef entrypoint(context):\n"
                f"    pathlib.Path({str(marker)!r}).write_text(json.dumps(dict(context.params)))\n")
    write_plugin(tmp_path, "declared:1.0", code, engine=engine, parameters={"windowHours": 24},
                 retries=3, retryDelayMinutes=0.01)

    run = run_plugin_dag("declared", tmp_path, conf={"windowHours": 48, "purge": True, "where": "1=1"})

    assert run.state == "failed"
    assert not marker.exists()  # neither the script nor the entrypoint started
    out = capfd.readouterr()
    assert ("dag_run.conf purge, where: not a parameter of declared:1.0; allowed: windowHours; nothing was run"
            in out.out + out.err)
    tries = [ti.try_number for ti in run.get_task_instances()]
    assert tries == [1]  # failed at once: a retry cannot help

    assert run_plugin_dag("declared", tmp_path, conf={"windowHours": 48}).state == "success"
    assert json.loads(marker.read_text())["windowHours"] == 48


def test_a_plugin_without_parameters_takes_no_conf_key(tmp_path: Path, run_plugin_dag, capfd):
    write_plugin(tmp_path, "bare:1.0", "def entrypoint(context):\n    return 1\n", engine="native")
    run = run_plugin_dag("bare", tmp_path, conf={"days": 0})
    assert run.state == "failed"
    out = capfd.readouterr()
    assert ("dag_run.conf days: not a parameter of bare:1.0; allowed: none (plugin.json declares no parameters)"
            in out.out + out.err)
