"""``python -m meccano``: the checks plugin authors and operators run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from meccano.cli.main import main
from meccano.settings.plugins_folder import CHECKOUT_PLUGINS_DIR

FIXTURES = Path(__file__).parents[1] / "fixtures" / "plugins"
ROOT = Path(__file__).resolve().parents[2]


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
    assert main(["plugins", "list", "--dir", str(CHECKOUT_PLUGINS_DIR)]) == 0
    out = capsys.readouterr().out
    assert ", 0 invalid, " in out and "error:" not in out


def test_validate_one_folder_and_a_folder_of_plugins(capsys):
    assert main(["plugins", "validate", str(FIXTURES / "goodNative:1.0")]) == 0
    assert "OK      goodNative:1.0" in capsys.readouterr().out
    assert main(["plugins", "validate", str(FIXTURES)]) == 1
    out = capsys.readouterr().out
    assert "INVALID missingSource:1.0" in out and "    missingSource:1.0: engine: source file" in out
    assert "5 valid, 9 invalid" in out


def test_db_init_is_idempotent(sqlite_iotdb, airflow_db, capsys):
    assert main(["db", "init"]) == 0
    out = capsys.readouterr().out
    assert "0 created" in out and "pool 'iotdb': 10 slots" in out  # the pool plugin tasks need, made too
    sqlite_iotdb.execute("DROP INDEX Facts_creationDate_idx")
    assert main(["db", "check"]) == 1
    assert "WARNING: Facts has no index on creationDate" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0
    assert "created index Facts_creationDate_idx" in capsys.readouterr().out
    assert main(["db", "check"]) == 0


def test_config_errors_exit_2_and_secrets_stay_hidden(airflow_pool, sqlite_iotdb, monkeypatch, capsys):
    monkeypatch.setenv("MYSQL_PASSWORD", "cli-Secret-Password")
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "cli-Secret-Password" not in out
    row = next(line for line in out.splitlines() if line.startswith("mysql.password "))
    assert [cell.strip() for cell in row.split("|")] == ["mysql.password", "MYSQL_PASSWORD", "***",
                                                         "environment variable MYSQL_PASSWORD"]
    monkeypatch.setenv("EXPORT_DAYS", "-1")
    assert main(["config", "show"]) == 2
    assert "export.days (from environment variable EXPORT_DAYS): -1 must be 0 or more" in capsys.readouterr().err


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "meccano", "plugins", "validate", str(FIXTURES / "badJson:1.0")],
                         capture_output=True, text=True, cwd=ROOT / "include", timeout=60)
    assert out.returncode == 1
    assert "badJson:1.0: plugin.json: invalid JSON at line 4, column 3" in out.stdout


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m meccano ...`` in its own process, with a timeout (a hang fails, never blocks)."""
    import os

    return subprocess.run([sys.executable, "-m", "meccano", *args], capture_output=True, text=True,
                          cwd=ROOT / "include", timeout=60, env={**os.environ, **(env or {})})


def test_list_survives_every_hostile_folder(tmp_path: Path):
    from meccano.contract.manifest import invalid_dag_id
    from tests.support.hostile import EXPECTED, SKIPPED, VALID, build_tree

    root = build_tree(tmp_path)
    out = _cli("plugins", "list", "--dir", str(root), "--json")
    assert out.returncode == 1, out.stderr
    rows = json.loads(out.stdout)
    names = [r["plugin"] for r in rows]
    assert sorted(names) == sorted(e.name for e in root.iterdir())  # every entry exactly once
    by_folder = {r["plugin"]: r for r in rows}
    for name in VALID:
        assert by_folder[f"{name}:1.0"]["status"] == "active", by_folder[f"{name}:1.0"]
    for name, (field_name, reason) in EXPECTED.items():
        row = by_folder[name]
        assert row["status"] == "invalid" and row["dag_id"] == invalid_dag_id(root / name)
        assert any(e.startswith(f"{name}: {field_name}: ") and reason in e for e in row["errors"]), row
    for name in SKIPPED:
        assert by_folder[name]["status"] == "skipped" and by_folder[name]["warnings"]
    assert len({r["dag_id"] for r in rows if r["dag_id"]}) == len(VALID) + len(EXPECTED)


def test_list_text_shows_skipped_entries_and_the_rule(tmp_path: Path):
    from tests.support.hostile import build_tree

    out = _cli("plugins", "list", "--dir", str(build_tree(tmp_path)))
    assert out.returncode == 1
    assert "_private:1.0" in out.stdout and "skipped: hidden or private name (starts with '.' or '_')" in out.stdout
    assert "stray-file.txt" in out.stdout and "skipped: not a folder" in out.stdout
    assert "3 skipped (entries whose name starts with '.' or '_'" in out.stdout


def test_validate_survives_every_hostile_folder(tmp_path: Path):
    from tests.support.hostile import EXPECTED, VALID, build_tree

    root = build_tree(tmp_path)
    out = _cli("plugins", "validate", str(root))
    assert out.returncode == 1, out.stderr
    assert f"{len(VALID)} valid, {len(EXPECTED)} invalid, 3 skipped" in out.stdout
    assert "OK      good:1.0" in out.stdout and "INVALID fifo:1.0" in out.stdout
    assert "    fifo:1.0: plugin.json: is a named pipe, not a regular file" in out.stdout
    alone = _cli("plugins", "validate", str(root / "devZero:1.0"))
    assert alone.returncode == 1 and "devZero:1.0: plugin.json: is a symbolic link" in alone.stdout


def test_schema_command_prints_the_published_schema():
    out = _cli("plugins", "schema")
    assert out.returncode == 0
    assert json.loads(out.stdout) == json.loads((ROOT / "plugin.schema.json").read_text())


def test_config_show_masks_url_credentials_and_warns(tmp_path: Path, airflow_pool, sqlite_iotdb):
    cfg = tmp_path / "c.yml"
    cfg.write_text("default:\n  warninglimt: 30\n  aws:\n    endpointUrl: 'http://minio:Url-Pa55word@s3.local:9000'\n")
    out = _cli("config", "show", env={"MECCANO_CONFIG": str(cfg)})
    assert out.returncode == 0, out.stderr
    assert "Url-Pa55word" not in out.stdout + out.stderr
    assert "http://minio:***@s3.local:9000" in out.stdout
    assert "warning: unknown key 'warninglimt'" in out.stderr


def test_config_named_but_missing_is_an_error_not_defaults(tmp_path: Path):
    for var in ("MECCANO_CONFIG", "CONFIG_FILE"):
        out = _cli("config", "show", env={var: str(tmp_path / "nope.yml")})
        assert out.returncode == 2
        assert f"{tmp_path / 'nope.yml'} (named by environment variable {var}): configuration file not found" \
            in out.stderr


def test_folder_name_that_is_not_utf8(tmp_path: Path):
    import os

    os.mkdir(os.path.join(os.fsencode(tmp_path), b"latin\xe9:1.0"))
    out = _cli("plugins", "list", "--dir", str(tmp_path))
    assert out.returncode == 1 and "latin\\udce9:1.0" in out.stdout
    assert "error: latin\ufffd:1.0: folder: folder name" in out.stdout
    out = _cli("plugins", "validate", str(tmp_path))
    assert out.returncode == 1 and "0 valid, 1 invalid" in out.stdout


def test_an_unreachable_iotdb_is_named_not_a_traceback(monkeypatch, capsys):
    monkeypatch.delenv("AIRFLOW_CONN_MECCANO_IOTDB", raising=False)
    monkeypatch.delenv("MECCANO_IOTDB_SQLITE", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_MECCANO_IOTDB", "mysql://sm:Unreachable-Pass-31@127.0.0.1:1/IOTDB")
    assert main(["db", "check"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("MISSING IOTDB connection: ") and "Can't connect" in err and "'meccano_iotdb'" in err
    assert "Traceback" not in err and "Unreachable-Pass-31" not in err


def test_the_demo_relays_progress_lines_as_they_come(tmp_path: Path, capsys):
    from meccano.cli.demo import LogRelay

    log = tmp_path / "simulator.log"
    log.write_text("an earlier run: backfill: day 9 of 9 done\n")
    relay = LogRelay(log, "backfill:")
    with log.open("a") as out:
        out.write("2026-12-05 INFO meccano.cli.simulator backfill: day 1 of 3 done, 500 Facts rows so far\nnoise\n")
        out.write("backfill: day 2 of 3")  # not a whole line yet
    relay()
    assert capsys.readouterr().out == "demo: backfill: day 1 of 3 done, 500 Facts rows so far\n"
    with log.open("a") as out:
        out.write(" done, 900 Facts rows so far\n")
    relay()
    assert capsys.readouterr().out == "demo: backfill: day 2 of 3 done, 900 Facts rows so far\n"


# --- the command line in Airflow's manner (issue 35) -----------------------------------------------------------

def test_every_action_has_its_own_help_and_the_top_level_lists_demo_and_exit_codes():
    top = _cli("--help")
    assert top.returncode == 0
    assert "demo" in top.stdout and "exit codes:" in top.stdout and "2  usage" in top.stdout
    check = _cli("db", "check", "--help")
    assert check.returncode == 0 and "usage: meccano db check [-h]\n" in check.stdout
    assert "--ahead" not in check.stdout and "--yes" not in check.stdout
    down = _cli("db", "downgrade", "--help")
    assert "--show-sql-only" in down.stdout and "-y, --yes" in down.stdout and "--ahead" not in down.stdout
    assert "--ahead" in _cli("db", "partition", "--help").stdout
    assert _cli("db", "check", "--ahead", "3").returncode == 2


def test_version_and_the_console_script():
    from importlib.metadata import entry_points, version

    out = _cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"meccano {version('meccano-servicemanager')}"
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts["meccano"] == "meccano.cli.main:main"
    installed = Path(sys.executable).parent / "meccano"
    done = subprocess.run([str(installed), "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("meccano ")


def test_plugins_list_output_formats_and_the_old_json_flag(capsys):
    import yaml

    assert main(["plugins", "list", "--dir", str(FIXTURES), "-o", "json"]) == 1
    as_json = json.loads(capsys.readouterr().out)
    assert main(["plugins", "list", "--dir", str(FIXTURES), "--json"]) == 1  # kept, hidden from --help
    assert json.loads(capsys.readouterr().out) == as_json
    assert main(["plugins", "list", "--dir", str(FIXTURES), "-o", "yaml"]) == 1
    assert yaml.safe_load(capsys.readouterr().out) == as_json
    assert "--json" not in _cli("plugins", "list", "--help").stdout


def test_config_show_names_each_setting_by_key_and_variable_with_its_source(airflow_pool, sqlite_iotdb, tmp_path,
                                                                           monkeypatch, capsys):
    import yaml

    cfg = tmp_path / "config.yml"
    cfg.write_text("default:\n  warninglimit: 30\n  export: {days: 3}\nprod:\n  export: {days: 4}\n")
    monkeypatch.setenv("MECCANO_CONFIG", str(cfg))
    monkeypatch.setenv("MECCANO_ENV", "prod")
    monkeypatch.setenv("EXPORT_BUCKET", "s3://AKIAEXAMPLE:url-Secret-Key@bucket-a")
    monkeypatch.setenv("AWS_SECRETACCESSKEY", "aws-Secret-Key")
    monkeypatch.setenv("MYSQL_PASSWORD", "db-Secret-Password")
    code = main(["config", "show", "-o", "json"])
    captured = capsys.readouterr()
    rows = {r["key"]: r for r in json.loads(captured.out)}
    assert rows["warninglimit"] == {"key": "warninglimit", "variable": "WARNINGLIMIT", "value": "30",
                                    "source": f"{cfg} [default]"}
    assert rows["export.days"]["value"] == "4" and rows["export.days"]["source"] == f"{cfg} [prod]"
    assert rows["export.bucket"] == {"key": "export.bucket", "variable": "EXPORT_BUCKET",
                                     "value": "s3://AKIAEXAMPLE:***@bucket-a",
                                     "source": "environment variable EXPORT_BUCKET"}
    assert rows["aws.secretAccessKey"]["value"] == "***" and rows["mysql.password"]["value"] == "***"
    assert rows["mysql.port"] == {"key": "mysql.port", "variable": "MYSQL_PORT", "value": "3306",
                                  "source": "built-in default"}
    assert rows["export.gzipLevel"]["variable"] == ""  # a key without a variable
    assert code in (0, 1)
    for secret in ("url-Secret-Key", "aws-Secret-Key", "db-Secret-Password"):
        assert secret not in captured.out
    assert main(["config", "show", "-o", "yaml"]) == code
    assert {r["key"]: r for r in yaml.safe_load(capsys.readouterr().out)} == rows
    assert main(["config", "show"]) == code
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["KEY", "|", "VARIABLE", "|", "VALUE", "|", "SOURCE"]
    assert "s3://AKIAEXAMPLE:***@bucket-a" in table and "url-Secret-Key" not in table
