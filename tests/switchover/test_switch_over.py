"""``migrate check`` and ``migrate apply`` on an installation that looks like the original's
(tests/fixtures/original_install: its config.yml with default: and prod:, a ~/.bash_profile, the minimal R, python
and node.js plugins, a plugin with a bad plugin.json, two versions of one plugin)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from meccano.cli.main import main
from meccano.errors import ConfigError
from meccano.settings.config import load_settings
from meccano.switchover.envfile import parse_env_text

ROOT = Path(__file__).resolve().parents[2]
ORIGINAL = Path(__file__).parents[1] / "fixtures" / "original_install"
PROFILE = ORIGINAL / "bash_profile"
EXPECTED = Path(__file__).parents[1] / "fixtures" / "migrate_check_report.txt"
SECRETS = ("fixture-yaml-db-password", "fixture-yaml-aws-secret", "fixture-prod-db-password",
           "fixture-env-db-password", "fixture-env-aws-secret")
MIGRATED = {"avgTimeChart", "counter", "factsReport", "helloNode", "helloPython", "helloR"}


def _check(capsys, *args: str) -> tuple[int, str]:
    code = main(["migrate", "check", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_check_report_line_by_line(capsys):
    code, out = _check(capsys, str(ORIGINAL), "--env-file", str(PROFILE))
    assert code == 1  # a plugin needs a change, a plugin needs an R package
    lines = out.splitlines()
    assert lines[:5] == [f"original installation: {ORIGINAL}", f"config: {ORIGINAL}/config/config.yml",
                         f"variables: {PROFILE}", "", "settings:"]
    expected = EXPECTED.read_text().splitlines()
    for number, (got, want) in enumerate(zip(lines[5:], expected, strict=True), start=6):
        assert got == want, f"report line {number}"
    # the lines an operator acts on, spelt out here too
    assert "CARRIED   config.yml [default]: mysql.password = *** -> secret: never written to config.yml; set " \
           "MYSQL_PASSWORD in the environment of Airflow's workers and API servers (or an Airflow connection)" in lines
    assert ("REPLACED  bash_profile: MYSQL_CONNECTIONLIMIT = '20' -> the Airflow pool 'iotdb' with 20 slots: plugin "
            "tasks using the IOTDB at once across the cluster (`python -m meccano pool sync`); kept in config.yml"
            in lines)
    assert "IGNORED   bash_profile: EXPORT_ENABLE = 'true' -> not a setting of the ServiceManager; did you mean " \
           "EXPORT_ENABLED?" in lines
    assert "UNCHANGED plugins/counter:1.0 (python) [shadowed: counter:1.1 wins]: runs unchanged" in lines
    assert "UNCHANGED plugins/helloR:1.0 (R): runs unchanged" in lines
    assert lines[-1] == ("summary: 40 settings: 25 carried over, 11 replaced, 4 ignored, 0 problems; 8 plugin "
                         "folders: 3 run unchanged, 4 with a warning, 1 need a change (2 need action before they run "
                         "here); action needed")
    assert not any(secret in out for secret in SECRETS)


def test_check_json_for_a_pipeline(capsys):
    code, out = _check(capsys, str(ORIGINAL), "--env-file", str(PROFILE), "--format", "json")
    data = json.loads(out)
    assert code == data["exit_code"] == 1
    plugins = {p["folder"]: p for p in data["plugins"]}
    assert plugins["badPlugin:1.0"]["status"] == "change" and plugins["badPlugin:1.0"]["needs_action"]
    # an original in-process node.js plugin runs through the shipped runner: a note to check, nothing to change
    assert plugins["helloNode:1.0"]["status"] == "warning" and not plugins["helloNode:1.0"]["needs_action"]
    assert plugins["counter:1.1"]["version"] == "wins over counter:1.0"
    assert plugins["counter:1.1"]["needs_action"] is False  # a note to check, nothing to install
    assert plugins["avgTimeChart:1.0"]["notes"][0]["severity"] == "warning"  # ggplot2 is not installed here: act
    settings = {(s["source"], s["key"]): s for s in data["settings"]}
    assert settings[("bash_profile", "AWS_SECRETACCESSKEY")]["value"] == "***"
    assert settings[("config.yml [prod]", "export.dayz")]["detail"].endswith("did you mean export.days?")
    assert data["counts"]["problem"] == 0
    assert not any(secret in out for secret in SECRETS)


def test_not_an_original_installation_exits_2(tmp_path, capsys):
    code, out = _check(capsys, str(tmp_path))
    assert code == 2
    assert f"migrate: {tmp_path}: not an original ServiceManager installation: neither config/config.yml nor a " \
           "plugins/ folder is there" in out
    code, out = _check(capsys, str(ORIGINAL), "--env-file", str(tmp_path / "missing"))
    assert code == 2 and "the variables file does not exist" in out


def _copy(tmp_path: Path) -> Path:
    install = tmp_path / "original"
    shutil.copytree(ORIGINAL, install)
    return install


def test_a_bad_value_is_a_problem_with_config_shows_message(tmp_path, capsys):
    install = _copy(tmp_path)
    cfg = install / "config" / "config.yml"
    cfg.write_text(cfg.read_text().replace("    host: db.example.com\n", "    host: db.example.com\n    port: three\n"))
    profile = tmp_path / "profile"
    profile.write_text("export EXPORT_DAYS=-1\nexport MYSQL_PASSWORD=$(cat /secret/file)\nexport TZ=Mars/Olympus\n")
    with pytest.raises(ConfigError) as loaded:
        load_settings(cfg, env={"MECCANO_ENV": "prod"})
    config_show = str(loaded.value)
    assert config_show == f"mysql.port (from {cfg} [prod]): 'three' is not a whole number"
    code, out = _check(capsys, str(install), "--env-file", str(profile))
    assert code == 1
    lines = out.splitlines()
    assert f"PROBLEM   config.yml [prod]: mysql.port = 'three' -> {config_show}" in lines
    assert "PROBLEM   profile: EXPORT_DAYS = '-1' -> export.days (from environment variable EXPORT_DAYS): -1 must be " \
           "0 or more" in lines
    assert "PROBLEM   profile: MYSQL_PASSWORD = *** -> line 2: the value uses the shell ($ or `); the file is never " \
           "run: write the value itself" in lines
    assert any(line.startswith("PROBLEM   profile: TZ = 'Mars/Olympus' -> timezone (from environment variable TZ): ")
               for line in lines)
    assert lines[-1].startswith("summary: 32 settings: ") and ", 4 problems; " in lines[-1]
    # apply copies the plugins but writes no config.yml while a setting is a problem
    target = tmp_path / "meccano"
    assert main(["migrate", "apply", str(install), "--env-file", str(profile), "--to", str(target)]) == 1
    assert "NOT WRITTEN" in capsys.readouterr().out and not (target / "config" / "config.yml").exists()
    assert {p.name for p in (target / "meccano_plugins").iterdir()} == {
        "avgTimeChart:1.0", "counter:1.0", "counter:1.1", "factsReport:1.0", "helloNode:1.0", "helloPython:1.0",
        "helloR:1.0"}


def test_links_out_of_the_installation_are_not_followed(tmp_path, capsys):
    install = _copy(tmp_path)
    outside = tmp_path / "elsewhere"
    shutil.copytree(ORIGINAL / "plugins" / "helloR:1.0", outside / "sneaky:1.0")
    (outside / "config.yml").write_text("default: {warninglimit: 5}\n")
    os.symlink(outside / "sneaky:1.0", install / "plugins" / "sneaky:1.0")
    (install / "config" / "config.yml").unlink()
    os.symlink(outside / "config.yml", install / "config" / "config.yml")
    code, out = _check(capsys, str(install))
    assert code == 1
    assert (f"PROBLEM   config.yml: (file) =  -> {install}/config/config.yml is a link to "
            f"'{outside}/config.yml', outside the installation: not read; copy the file itself into config/") in out
    assert "CHANGE    plugins/sneaky:1.0 (?)\n          - needs a change: folder: is a symbolic link to" in out


@pytest.mark.parametrize(("text", "expected"), [
    ("export A=1", {"A": "1"}),
    ("A='two words' # comment", {"A": "two words"}),
    ('export A="x \\"y\\" \\$z"', {"A": 'x "y" $z'}),
    ("A=plain # comment", {"A": "plain"}),
    ("A=1\nA=2", {"A": "2"}),
    ("A=$HOME/x", {}),
    ("A=`id`", {}),
    ('A="$(cat f)"', {}),
    ("A=a b", {}),
    ("A='open", {}),
])
def test_the_variables_file_is_read_never_run(text, expected):
    entries, _ = parse_env_text(text)
    assert {e.name: e.value for e in entries if e.value is not None} == expected
    assert all(e.problem for e in entries if e.value is None)


def test_lines_that_are_not_assignments_are_counted():
    entries, not_read = parse_env_text("# c\nif true; then\n  export A=1\nfi\nsource ~/.bashrc\n")
    assert [(e.name, e.value, e.line) for e in entries] == [("A", "1", 3)]
    assert not_read == [2, 4, 5]


def test_apply_then_dagbag_with_every_migrated_plugin(tmp_path, capsys, monkeypatch):
    target = tmp_path / "meccano"
    (target / "config").mkdir(parents=True)
    (target / "config" / "config.yml").write_text("default: {warninglimit: 5}\n")
    args = ["migrate", "apply", str(ORIGINAL), "--env-file", str(PROFILE), "--to", str(target)]
    assert main([*args, "--dry-run"]) == 1
    out = capsys.readouterr().out
    assert "WOULD COPY plugins/helloR:1.0" in out and "apply: 8 would change, 1 left for you (see above)" in out
    assert _snapshot(target) == {"config/config.yml": b"default: {warninglimit: 5}\n"}

    assert main(args) == 1  # it would replace config.yml: no --yes, no terminal to ask on
    refused = capsys.readouterr()
    assert f"WOULD WRITE {target}/config/config.yml" in refused.out
    assert "migrate apply (replaces" in refused.err and "re-run with --yes" in refused.err
    assert _snapshot(target) == {"config/config.yml": b"default: {warninglimit: 5}\n"}

    assert main([*args, "--yes"]) == 1  # a plugin needs a change first
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert f"COPIED    plugins/counter:1.0 -> {target}/meccano_plugins/counter:1.0" in lines
    assert "NOT COPIED plugins/badPlugin:1.0: needs a change first (see migrate check)" in lines
    assert (f"WROTE {target}/config/config.yml: sections default, prod; 23 settings carried over; the file there "
            "kept as config.yml.before-migrate") in lines
    assert ("SET       MYSQL_PASSWORD (from config.yml [default] mysql.password, config.yml [prod] mysql.password, "
            "bash_profile): a secret, set it in the environment of the Airflow components") in lines
    assert lines[-1] == "apply: 8 changed, 1 left for you (see above)"
    assert not any(secret in out for secret in SECRETS)
    written = (target / "config" / "config.yml").read_text()
    assert not any(secret in written for secret in SECRETS) and "password" not in written.lower()
    assert (target / "config" / "config.yml.before-migrate").read_text() == "default: {warninglimit: 5}\n"
    assert _snapshot(target / "meccano_plugins" / "helloR:1.0") == _snapshot(ORIGINAL / "plugins" / "helloR:1.0")

    # the settings as the original ran them (NODE_ENV=prod, the variables over the file), secrets from the environment
    settings = load_settings(target / "config" / "config.yml", env={"MECCANO_ENV": "prod"})
    assert (settings.warninglimit, settings.mysql.host, settings.mysql.connection_limit) == (30, "db.example.com", 20)
    assert (settings.export.bucket, settings.export.days, settings.export.enabled) == ("meccano-iotdb-prod", 2, True)
    assert (settings.timezone, settings.forecast_days, settings.warnings) == ("America/Sao_Paulo", 10, ())
    assert settings.section("avgTimeChart") == {"windowHours": 24} and not settings.ignored

    before = _snapshot(target)
    assert main(args) == 1
    again = capsys.readouterr().out
    assert not any(line.startswith(("COPIED", "WROTE")) for line in again.splitlines())
    assert _snapshot(target) == before
    assert f"UNCHANGED {target}/config/config.yml: already holds the settings carried over" in again
    assert "SKIPPED   plugins/helloR:1.0: the same plugin is already in" in again

    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("MECCANO_PLUGINS_DIR", str(target / "meccano_plugins"))
    monkeypatch.setenv("MECCANO_CONFIG", str(target / "config" / "config.yml"))
    monkeypatch.setenv("MECCANO_ENV", "prod")
    bag = DagBag(dag_folder=str(ROOT / "dags"), bundle_path=ROOT)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == MIGRATED  # no meccano_config_error, no meccano_invalid_*
    assert "version:1.1" in bag.dags["counter"].tags


def test_apply_never_overwrites_a_different_plugin(tmp_path, capsys):
    target = tmp_path / "meccano"
    mine = target / "meccano_plugins" / "helloR:1.0"
    mine.mkdir(parents=True)
    (mine / "plugin.json").write_text("{}")
    code = main(["migrate", "apply", str(ORIGINAL), "--to", str(target)])
    out = capsys.readouterr().out
    assert code == 1
    assert (f"REFUSED   plugins/helloR:1.0: a different plugin helloR:1.0 is already in {target}/meccano_plugins; "
            "never overwritten: give one of them another version (folder, plugin.json and file names), or remove the "
            "one there, then re-run") in out
    assert _snapshot(mine) == {"plugin.json": b"{}"}
    assert (target / "meccano_plugins" / "helloPython:1.0" / "plugin.json").is_file()


def test_a_crashed_copy_leaves_no_plugin_and_is_cleaned_up(tmp_path, capsys):
    target = tmp_path / "meccano"
    leftover = target / "meccano_plugins" / ".migrate-helloR:1.0"
    leftover.mkdir(parents=True)
    (leftover / "plugin.json").write_text("half")
    assert main(["migrate", "apply", str(ORIGINAL), "--to", str(target)]) == 1
    capsys.readouterr()
    assert not leftover.exists()
    assert (target / "meccano_plugins" / "helloR:1.0" / "helloR:1.0.R").is_file()


@pytest.mark.services
def test_migrated_r_and_python_plugins_run_on_mariadb(tmp_path, capfd, iotdb, run_plugin_dag, monkeypatch):
    target = tmp_path / "meccano"
    assert main(["migrate", "apply", str(ORIGINAL), "--env-file", str(PROFILE), "--to", str(target)]) == 1
    capfd.readouterr()
    monkeypatch.setenv("MECCANO_CONFIG", str(target / "config" / "config.yml"))
    monkeypatch.setenv("MECCANO_ENV", "prod")  # the IOTDB comes from the Airflow connection (iotdb fixture)
    iotdb.execute("INSERT INTO Facts (channel, year, month, day, week_day, hour, minute, second, device_group, "
                  "device, sensor, data) VALUES ('c', 2026, 1, 1, 4, 0, 0, 0, 'g', 'aa:01', 1, 1), "
                  "('c', 2026, 1, 1, 4, 0, 0, 1, 'g', 'aa:01', 1, 2), "
                  "('c', 2026, 1, 1, 4, 0, 0, 2, 'g', 'aa:02', 1, 3)")
    for dag_id in ("helloR", "helloPython"):
        capfd.readouterr()
        run = run_plugin_dag(dag_id, root=target / "meccano_plugins")
        out = capfd.readouterr()
        assert run.state == "success", dag_id
        assert "facts: 3" in out.out + out.err, dag_id


def test_without_to_it_fills_the_folders_this_installation_reads(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MECCANO_PLUGINS_DIR", str(tmp_path / "plugins-here"))
    monkeypatch.setenv("MECCANO_CONFIG", str(tmp_path / "conf" / "meccano.yml"))
    assert main(["migrate", "apply", str(ORIGINAL), "--env-file", str(PROFILE)]) == 1
    out = capsys.readouterr().out
    assert f"COPIED    plugins/helloR:1.0 -> {tmp_path}/plugins-here/helloR:1.0" in out
    assert f"WROTE {tmp_path}/conf/meccano.yml: sections default, prod; 23 settings carried over" in out
    assert load_settings(env={"MECCANO_CONFIG": str(tmp_path / "conf" / "meccano.yml")}).warninglimit == 30


def test_links_inside_a_plugin_are_left_out_of_the_copy(tmp_path, capsys):
    install = _copy(tmp_path)
    folder = install / "plugins" / "helloPython:1.0"
    os.symlink("/etc/passwd", folder / "passwd")
    os.symlink("/etc", folder / "etc")
    target = tmp_path / "meccano"
    assert main(["migrate", "apply", str(install), "--to", str(target)]) == 1
    out = capsys.readouterr().out
    assert (f"COPIED    plugins/helloPython:1.0 -> {target}/meccano_plugins/helloPython:1.0 (left out, not regular "
            "files: etc, passwd)") in out
    copied = target / "meccano_plugins" / "helloPython:1.0"
    assert sorted(p.name for p in copied.iterdir()) == ["assets", "helloPython:1.0.py", "plugin.json"]


def test_apply_copies_plain_permission_bits_only(tmp_path, capsys):
    """A hostile original installation's set-id and sticky bits never reach the copy (run as root, apply would
    otherwise make root-owned set-uid programs); nor does its owner."""
    install = _copy(tmp_path)
    folder = install / "plugins" / "helloPython:1.0"
    script = folder / "helloPython:1.0.py"
    os.chmod(script, 0o6755)
    os.chown(script, 12345, 12345)
    os.chmod(folder / "plugin.json", 0o1644)
    target = tmp_path / "meccano"
    assert main(["migrate", "apply", str(install), "--to", str(target)]) == 1
    assert "COPIED    plugins/helloPython:1.0" in capsys.readouterr().out
    copied = target / "meccano_plugins" / "helloPython:1.0"
    info = os.stat(copied / "helloPython:1.0.py")
    assert oct(info.st_mode & 0o7777) == oct(0o755)  # the execute bits kept, set-uid and set-gid dropped
    assert (info.st_uid, info.st_gid) == (os.getuid(), os.getgid())
    assert oct(os.stat(copied / "plugin.json").st_mode & 0o7777) == oct(0o644)


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_apply_refuses_a_plugin_holding_a_pipe_or_a_socket(tmp_path, capsys, kind):
    import socket
    import tempfile

    install = _copy(tmp_path)
    special = install / "plugins" / "helloPython:1.0" / "assets" / "feed"
    if kind == "fifo":
        os.mkfifo(special)
        what = "a named pipe"
    else:
        short = Path(tempfile.mkdtemp(dir=tmp_path.anchor + "tmp"))  # a socket's path is at most 107 bytes
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(short / "s"))
        sock.close()
        os.rename(short / "s", special)
        short.rmdir()
        what = "a socket"
    target = tmp_path / "meccano"
    assert main(["migrate", "apply", str(install), "--to", str(target)]) == 1
    out = capsys.readouterr().out
    assert (f"NOT COPIED plugins/helloPython:1.0: assets/feed is {what}; only regular files and folders are copied: "
            "remove it from the original installation (or copy the plugin by hand without it), then re-run") in out
    assert not (target / "meccano_plugins" / "helloPython:1.0").exists()
    assert (target / "meccano_plugins" / "helloR:1.0").is_dir()  # the other plugins are copied


def test_apply_refuses_a_device_file(tmp_path, capsys):
    install = _copy(tmp_path)
    device = install / "plugins" / "helloR:1.0" / "null"
    os.mknod(device, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # tests run as root
    target = tmp_path / "meccano"
    assert main(["migrate", "apply", str(install), "--to", str(target)]) == 1
    assert "NOT COPIED plugins/helloR:1.0: null is a device; only regular files" in capsys.readouterr().out
    assert not (target / "meccano_plugins" / "helloR:1.0").exists()


def test_a_plugin_folder_swapped_for_a_link_out_is_not_read(tmp_path, capsys, monkeypatch):
    """Between ``check`` and the copy the folder becomes a link out of the installation: nothing is read there."""
    from meccano.switchover import apply as apply_module

    install = _copy(tmp_path)
    outside = tmp_path / "secret"
    shutil.copytree(install / "plugins" / "helloR:1.0", outside)
    (outside / "stolen.txt").write_text("root only")
    real_copy = apply_module.copy_plugins

    def swap_then_copy(installation, target, dry_run, outcome):
        if not (install / "plugins" / "helloR:1.0").is_symlink():  # apply plans (dry run), then copies
            shutil.rmtree(install / "plugins" / "helloR:1.0")
            os.symlink(outside, install / "plugins" / "helloR:1.0")
        real_copy(installation, target, dry_run, outcome)

    monkeypatch.setattr(apply_module, "copy_plugins", swap_then_copy)
    target = tmp_path / "meccano"
    assert main(["migrate", "apply", str(install), "--to", str(target)]) == 1
    assert "NOT COPIED plugins/helloR:1.0: cannot be read" in capsys.readouterr().out
    assert not (target / "meccano_plugins" / "helloR:1.0").exists()
