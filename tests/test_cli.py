"""``python -m meccano``: the checks plugin authors and operators run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from meccano.cli import main
from meccano.discovery import DEFAULT_PLUGINS_DIR

FIXTURES = Path(__file__).parent / "fixtures" / "plugins"
ROOT = Path(__file__).resolve().parents[1]


def test_list_shows_every_plugin_and_fails_on_invalid(capsys):
    assert main(["plugins", "list", "--dir", str(FIXTURES), "--json"]) == 1
    rows = {r["plugin"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["goodNative:1.0"]["status"] == "active"
    assert rows["goodScript:1.0"]["status"] == "disabled"
    assert rows["shadow:1.0"]["status"] == "shadowed by shadow:2.0"
    assert rows["badCron:1.0"]["status"] == "invalid"
    assert rows["badCron:1.0"]["errors"] == [
        "badCron:1.0: schedule: invalid schedule: minute field: 61 is out of range 0-59"]


def test_shipped_plugins_all_valid(capsys):
    assert main(["plugins", "list", "--dir", str(DEFAULT_PLUGINS_DIR)]) == 0
    assert "invalid" not in capsys.readouterr().out


def test_validate_one_folder_and_a_folder_of_plugins(capsys):
    assert main(["plugins", "validate", str(FIXTURES / "goodNative:1.0")]) == 0
    assert "OK      goodNative:1.0" in capsys.readouterr().out
    assert main(["plugins", "validate", str(FIXTURES)]) == 1
    out = capsys.readouterr().out
    assert "INVALID missingSource:1.0" in out and "    missingSource:1.0: engine: source file" in out
    assert "5 valid, 9 invalid" in out


def test_db_init_is_idempotent(sqlite_iotdb, capsys):
    assert main(["db", "init"]) == 0
    assert "0 created" in capsys.readouterr().out
    sqlite_iotdb.execute("DROP INDEX Facts_creationDate_idx")
    assert main(["db", "check"]) == 1
    assert "WARNING: Facts has no index on creationDate" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0
    assert "created index Facts_creationDate_idx" in capsys.readouterr().out
    assert main(["db", "check"]) == 0


def test_config_errors_exit_2_and_secrets_stay_hidden(monkeypatch, capsys):
    monkeypatch.setenv("MYSQL_PASSWORD", "cli-Secret-Password")
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "cli-Secret-Password" not in out and "Secret('***')" in out
    monkeypatch.setenv("EXPORT_DAYS", "-1")
    assert main(["config", "show"]) == 2
    assert "export.days (from environment variable EXPORT_DAYS): -1 must be 0 or more" in capsys.readouterr().err


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "meccano", "plugins", "validate", str(FIXTURES / "badJson:1.0")],
                         capture_output=True, text=True, cwd=ROOT / "include")
    assert out.returncode == 1
    assert "badJson:1.0: plugin.json: invalid JSON at line 4, column 3" in out.stdout
