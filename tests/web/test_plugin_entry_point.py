"""The web view's Airflow plugin comes from the installed package (its ``airflow.plugins`` entry
point), not from a plugins folder: an Airflow whose plugins folder is empty still serves
``/meccano/`` and ``/meccano-console/``, and the plugin is registered once.

The Airflow processes run in subprocesses with a fresh ``AIRFLOW_HOME`` (Airflow loads its plugins
once per process) on the interpreter running the tests, so they see the package as it is installed.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from meccano.contract.web_paths import CONSOLE_PREFIX, WEB_PREFIX
from meccano.web.airflow_plugin import NAME, MeccanoWebPlugin

ROOT = Path(__file__).resolve().parents[2]
TARGET = "meccano.web.airflow_plugin:MeccanoWebPlugin"
CONSOLE_TOKEN = "entry-point-console-token"
REINSTALL = "reinstall the package (scripts/install-venv.sh runs `pip install --no-deps -e .`)"


def _airflow_env(home: Path, plugins_folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MECCANO_", "_AIRFLOW", "PYTEST"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_folder),
        "AIRFLOW__CORE__DAGS_FOLDER": str(plugins_folder),  # empty too: no DAG parsing needed here
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API_AUTH__JWT_SECRET": "entry-point-test-jwt-secret-" + "x" * 48,
        "MECCANO_PLUGINS_DIR": str(ROOT / "meccano_plugins"),
        "MECCANO_WEB_CONSOLE_TOKEN": CONSOLE_TOKEN,
        # tests.support.web for the app check; the rest of the caller's path (the package under test)
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    })
    return env


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{argv[1:4]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def airflow_empty_plugins(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A fresh Airflow home with an EMPTY plugins folder and a migrated SQLite metadata DB."""
    home = tmp_path_factory.mktemp("airflow-home")
    empty = tmp_path_factory.mktemp("empty-plugins-folder")
    env = _airflow_env(home, empty)
    _run([sys.executable, "-m", "airflow", "db", "migrate"], env, home)
    assert not any(empty.iterdir())
    yield env


def test_the_installed_package_declares_the_airflow_plugins_entry_point():
    found = [ep for ep in importlib.metadata.entry_points(group="airflow.plugins") if ep.name == NAME]
    assert found, f"the installed package has no `airflow.plugins` entry point {NAME!r}: {REINSTALL}"
    assert [ep.value for ep in found] == [TARGET], found
    assert found[0].load() is MeccanoWebPlugin
    assert MeccanoWebPlugin.name == NAME
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["airflow.plugins"]
    assert declared == {NAME: TARGET}


def test_the_demo_checks_the_same_entry_point():
    from meccano.cli.demo import web_plugin_installed

    assert web_plugin_installed(), REINSTALL


def test_the_plugins_folder_holds_no_copy_of_the_plugin():
    """Airflow loads the folder first and skips the entry point's plugin of the same name (an import error)."""
    assert (ROOT / "plugins" / "README.md").is_file()  # the folder stays, for the operator's own plugins
    assert sorted((ROOT / "plugins").rglob("*.py")) == []


def test_airflow_plugins_lists_the_meccano_plugin_with_an_empty_plugins_folder(airflow_empty_plugins):
    env = airflow_empty_plugins
    done = _run([sys.executable, "-m", "airflow", "plugins", "-o", "json"], env, Path(env["AIRFLOW_HOME"]))
    plugins = json.loads(done.stdout[done.stdout.index("["):])
    ours = [p for p in plugins if p["name"] == NAME]
    assert len(ours) == 1, f"{NAME} listed {len(ours)} times: {[p['name'] for p in plugins]} ({REINSTALL})"
    plugin = ours[0]
    assert f"EntryPoint(name='{NAME}', value='{TARGET}', group='airflow.plugins')" in plugin["source"]
    assert plugin["source"].startswith("meccano-servicemanager==")
    assert sorted(app["url_prefix"] for app in plugin["fastapi_apps"]) == [WEB_PREFIX, CONSOLE_PREFIX]
    assert [view["url_route"] for view in plugin["external_views"]] == ["meccano"]


# Runs in a subprocess: Airflow's own API app (airflow.api_fastapi.app.create_app, what `airflow
# api-server` serves), called in-process through a TestClient without its lifespan.
_APP_CHECK = r'''
import json, os
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app
from tests.support.web import admin_token

client = TestClient(create_app())
auth = {"Authorization": "Bearer " + admin_token()}
console = {"X-Meccano-Token": os.environ["MECCANO_WEB_CONSOLE_TOKEN"]}
checks = {"page": ("/meccano/", auth), "anonymous": ("/meccano/", {}), "listing": ("/meccano/plugins", auth),
          "console": ("/meccano-console/plugins", console), "plugins": ("/api/v2/plugins", auth),
          "import_errors": ("/api/v2/plugins/importErrors", auth)}
result = {}
for key, (path, headers) in checks.items():
    response = client.get(path, headers=headers)
    result[key] = [response.status_code, response.headers.get("content-type", ""), response.text]
print(json.dumps(result))
'''


def _json(answer: list) -> object:
    status, kind, body = answer
    assert status == 200 and kind.startswith("application/json"), f"{status} {kind}: {body[:300]}"
    return json.loads(body)


def test_airflows_api_app_serves_the_web_view_with_an_empty_plugins_folder(airflow_empty_plugins):
    env = airflow_empty_plugins
    done = _run([sys.executable, "-c", _APP_CHECK], env, Path(env["AIRFLOW_HOME"]))
    result = json.loads(done.stdout.strip().splitlines()[-1])
    plugins = [p["name"] for p in _json(result["plugins"])["plugins"]]
    assert plugins.count(NAME) == 1, f"Airflow's plugins: {plugins} ({REINSTALL})"
    errors = _json(result["import_errors"])["import_errors"]
    # "Plugin 'meccano_web' already registered": a copy in the plugins folder, or the package's metadata
    # twice on sys.path (include/*.egg-info next to an editable install's dist-info)
    assert errors == [], f"{errors} (scripts/install-venv.sh removes include/*.egg-info)"
    status, kind, html = result["page"]
    assert status == 200 and kind.startswith("text/html") and "Meccano" in html, (status, kind)
    assert result["anonymous"][0] == 401  # the page's own login check, not Airflow's catch-all UI route
    folders = {row["folder"] for row in _json(result["listing"])}
    assert {"updatesByDevice:1.0", "deviceAvgTime:1.0"} <= folders, folders
    assert any(row["plugin"].startswith("updatesByDevice:") for row in _json(result["console"]))
