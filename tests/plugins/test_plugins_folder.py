"""The plugins folder is a setting (``MECCANO_PLUGINS_DIR``) with a default for each way of deploying, a missing
or empty one is named loudly (the DAG file, ``db check``, ``plugins list``), and ``install-dags`` puts the DAG file
and the shipped plugins into an Airflow's folders. The Meccano page's banner: tests/settings/test_prerequisites.py."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from meccano.cli.main import main
from meccano.plugins.discovery import discover
from meccano.settings import plugins_folder
from meccano.settings.plugins_folder import CHECKOUT_PLUGINS_DIR, default_plugins_dir, plugins_dir

ROOT = Path(__file__).resolve().parents[2]


def test_the_default_is_the_checkouts_folder_else_airflow_home(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("MECCANO_PLUGINS_DIR", raising=False)
    assert default_plugins_dir() == plugins_dir() == CHECKOUT_PLUGINS_DIR == ROOT / "meccano_plugins"
    # an installed package: PROJECT_ROOT is the site-packages' parents, which hold no include/meccano
    monkeypatch.setattr(plugins_folder, "PROJECT_ROOT", tmp_path / "lib" / "python3.11")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    assert plugins_dir() == tmp_path / "airflow" / "meccano_plugins"
    monkeypatch.setenv("MECCANO_PLUGINS_DIR", str(tmp_path / "mine"))
    assert plugins_dir() == tmp_path / "mine"


def _dag_file_errors(monkeypatch, plugins: Path) -> dict[str, str]:
    monkeypatch.setenv("MECCANO_PLUGINS_DIR", str(plugins))
    bag = DagBag(dag_folder=str(ROOT / "dags"), bundle_path=ROOT)
    assert bag.dag_ids == []
    return bag.import_errors


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_a_missing_or_empty_folder_is_an_import_error_of_the_dag_file(monkeypatch, tmp_path: Path, state: str):
    folder = tmp_path / "plugins"
    if state == "empty":
        folder.mkdir()
        (folder / "__pycache__").mkdir()  # skipped entries are not plugins
    errors = _dag_file_errors(monkeypatch, folder)
    assert list(errors) == ["dags/meccano_dags.py"]  # relative to the bundle
    message = next(iter(errors.values()))
    why = "does not exist" if state == "missing" else "holds no plugin folder"
    assert f"PluginsFolderError: Meccano: the plugins folder {folder} {why} (set by MECCANO_PLUGINS_DIR)" in message
    assert "python -m meccano install-dags" in message


def test_db_check_and_plugins_list_name_the_folder_and_the_setting(sqlite_iotdb, airflow_pool, monkeypatch,
                                                                    tmp_path: Path, capsys):
    assert main(["db", "check"]) == 0  # the checkout's folder: all set
    capsys.readouterr()
    monkeypatch.setenv("MECCANO_PLUGINS_DIR", str(tmp_path / "nowhere"))
    assert main(["db", "check"]) == 1
    err = capsys.readouterr().err
    assert (f"MISSING plugins folder {tmp_path / 'nowhere'}: it does not exist (set by MECCANO_PLUGINS_DIR); "
            "without a plugin folder there is no Meccano DAG. Fix: set MECCANO_PLUGINS_DIR") in err
    assert main(["plugins", "list"]) == 1
    assert f"error: the plugins folder {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err
    (tmp_path / "nowhere").mkdir()
    assert main(["plugins", "list"]) == 1
    assert "holds no plugin folder (set by MECCANO_PLUGINS_DIR)" in capsys.readouterr().err


def test_install_dags_copies_the_dag_file_and_the_shipped_plugins(monkeypatch, tmp_path: Path, capsys):
    dags, plugins = tmp_path / "dags", tmp_path / "meccano_plugins"
    args = ["install-dags", "--dags-folder", str(dags), "--plugins-folder", str(plugins)]
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would copy {dags / 'meccano_dags.py'}" in out and "dry run: nothing changed" in out
    assert not dags.exists() and not plugins.exists()

    assert main(args) == 0
    out = capsys.readouterr().out
    assert "installed" in out and f"note: set MECCANO_PLUGINS_DIR={plugins}" in out
    assert filecmp.cmp(dags / "meccano_dags.py", ROOT / "dags" / "meccano_dags.py", shallow=False)
    shipped = discover(CHECKOUT_PLUGINS_DIR)
    copied = discover(plugins)
    assert [p.folder.name for p in copied.active] == [p.folder.name for p in shipped.active]
    assert copied.invalid == [] and not list(plugins.rglob("__pycache__"))
    monkeypatch.setenv("MECCANO_PLUGINS_DIR", str(plugins))
    bag = DagBag(dag_folder=str(dags), bundle_path=tmp_path)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {p.manifest.dag_id for p in shipped.active}

    assert main(args) == 0  # again: everything is there already
    assert " 0 new, 0 differing," in capsys.readouterr().out
    edited = plugins / "cleanMessages:1.0" / "plugin.json"
    edited.write_text(edited.read_text() + "\n")
    assert main(args) == 1  # a file the operator changed is not replaced silently (no terminal here: refused)
    captured = capsys.readouterr()
    assert f"replace {edited}" in captured.out and "re-run with --yes" in captured.err
    assert edited.read_text().endswith("\n\n")
    assert main([*args, "--yes"]) == 0
    assert filecmp.cmp(edited, CHECKOUT_PLUGINS_DIR / "cleanMessages:1.0" / "plugin.json", shallow=False)
