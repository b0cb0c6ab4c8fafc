"""Hostile and broken script plugins run through ``dag.test()``: what they see, what they
leak, what they leave behind."""

from __future__ import annotations

import base64
import json
import os
import pwd
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.plugins import write_plugin

IOTDB_PW = "conn-pa55/word+x"
AWS_SECRET = "aws-s3cr3t/key+Q"
JWT_SECRET = "jwt-secret-that-mints-admin-logins"
VAR_SECRET = "airflow-variable-secret"
CONSOLE_TOKEN = "console-t0ken-value"


def _ti_state(run) -> str:
    return next(iter(run.get_task_instances())).state


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): count it dead only when /proc says so.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


@pytest.fixture
def secret_worker_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A worker whose environment holds Airflow's secrets, as a real one does."""
    monkeypatch.setenv("AIRFLOW_CONN_MECCANO_IOTDB", f"mysql://u:{quote(IOTDB_PW, safe='')}@127.0.0.1:1/IOTDB")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": "AKIAEXAMPLE", "password": AWS_SECRET,
        "extra": {"region_name": "sa-east-1", "endpoint_url": "http://127.0.0.1:1"}}))
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", JWT_SECRET)
    monkeypatch.setenv("AIRFLOW_VAR_SOMETHING", VAR_SECRET)
    monkeypatch.setenv("MECCANO_WEB_CONSOLE_TOKEN", CONSOLE_TOKEN)
    monkeypatch.delenv("MECCANO_IOTDB_SQLITE", raising=False)
    monkeypatch.setenv("MECCANO_REPORTS_DIR", str(tmp_path / "reports"))


def test_script_sees_only_its_environment_and_no_secret_reaches_the_log(
        tmp_path: Path, run_plugin_dag, secret_worker_env, capfd, plugin_shared: Path):
    token_file = plugin_shared / "token.txt"  # a file the plugin user may read
    token_file.write_text(CONSOLE_TOKEN)
    code = f"""
import base64, json, os, urllib.parse
print("ENV=" + json.dumps(dict(os.environ), sort_keys=True))
pw = os.environ["MYSQL_PASSWORD"]
print("B64=" + base64.b64encode(("u:" + pw).encode()).decode())
print("B64URL=" + base64.urlsafe_b64encode(("xy:" + pw).encode()).decode())
print("URL=" + urllib.parse.quote(os.environ["AWS_SECRETACCESSKEY"], safe=""))
print("JSON=" + json.dumps({{"k": pw + '"'}}))
print("TOKEN=" + open({str(token_file)!r}).read())
print("SPLIT=" + pw, end="", flush=True)
print(" and the rest of the line")
"""
    write_plugin(tmp_path / "plugins", "envdump:1.0", code)
    run = run_plugin_dag("envdump", tmp_path / "plugins")
    out = capfd.readouterr()
    log = out.out + out.err
    assert run.state == "success", log[-3000:]
    dumped = next(line.split("ENV=", 1)[1] for line in log.splitlines() if "ENV=" in line)
    env = json.JSONDecoder().raw_decode(dumped)[0]
    assert not [k for k in env if k.upper().startswith("AIRFLOW")]
    assert {"MYSQL_HOST", "MYSQL_PORT", "MYSQL_USER", "MYSQL_PASSWORD", "MYSQL_DATABASE", "AWS_REGION",
            "AWS_ACCESSKEYID", "AWS_SECRETACCESSKEY", "EXPORT_ENABLED", "EXPORT_DAYS", "FORECAST_DAYS",
            "WARNINGLIMIT", "PATH", "HOME", "TZ", "MECCANO_RUN_ID", "MECCANO_PLUGIN", "MECCANO_REPORT_DIR"} <= set(env)
    assert env["MYSQL_PASSWORD"] == "***" and env["AWS_SECRETACCESSKEY"] == "***"
    assert env["MYSQL_PORT"] == "1" and env["AWS_ACCESSKEYID"] == "AKIAEXAMPLE"
    assert "MECCANO_TIMEOUT_SECONDS" not in env  # the runner's own settings stay with the runner
    forms = [JWT_SECRET, VAR_SECRET, CONSOLE_TOKEN]
    for secret in (IOTDB_PW, AWS_SECRET):
        forms += [secret, quote(secret, safe=""), json.dumps(secret)[1:-1],
                  base64.b64encode(f"u:{secret}".encode()).decode()[4:-4],
                  base64.urlsafe_b64encode(f"xy:{secret}".encode()).decode()[4:-4]]
    for form in forms:
        assert form not in log, form
    assert "TOKEN=***" in log and "SPLIT=*** and the rest of the line" in log
    assert 'JSON={"k": "***\\""}' in log, [line for line in log.splitlines() if "JSON=" in line]


STUBBORN = ("import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(120)")


def _stubborn_code(pids: Path) -> str:
    """A script that ignores SIGTERM, with a grandchild in its own session that ignores it too,
    and another one orphaned by a double fork (its parent exits at once)."""
    return f"""
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pids = {str(pids)!r}
open(os.path.join(pids, "script"), "w").write(str(os.getpid()))
stubborn = {STUBBORN!r}
subprocess.Popen([sys.executable, "-c", stubborn, os.path.join(pids, "session")], start_new_session=True)
subprocess.Popen([sys.executable, "-c", "import subprocess, sys; subprocess.Popen([sys.executable, '-c', "
                  + repr(stubborn) + ", sys.argv[1]], start_new_session=True)", os.path.join(pids, "orphan")],
                 start_new_session=True).wait()
while len(os.listdir(pids)) < 3:
    time.sleep(0.05)
print("all started", flush=True)
time.sleep(120)
"""


def _assert_all_gone(pids: Path) -> None:
    started = {p.name: int(p.read_text()) for p in pids.iterdir()}
    assert set(started) == {"script", "session", "orphan"}
    # each was the plugin user's (it wrote its pid file), not the worker's: the root runner still stopped them all
    assert {p.stat().st_uid for p in pids.iterdir()} == {pwd.getpwnam("meccano-plugin").pw_uid}
    assert [name for name, pid in started.items() if _alive(pid)] == []


def test_default_timeout_kills_a_script_that_ignores_sigterm_and_its_escaped_grandchildren(
        tmp_path: Path, run_plugin_dag, monkeypatch: pytest.MonkeyPatch, capfd, plugin_shared: Path):
    """No timeoutMinutes: the default timeout applies (3 s here), enforced by the runner."""
    monkeypatch.setenv("MECCANO_PLUGIN_TIMEOUT_MINUTES", "0.05")
    monkeypatch.setenv("MECCANO_PLUGIN_KILL_GRACE", "1")
    pids = plugin_shared
    write_plugin(tmp_path / "plugins", "stubborn:1.0", _stubborn_code(pids))
    run = run_plugin_dag("stubborn", tmp_path / "plugins")
    out = capfd.readouterr()
    log = out.out + out.err
    assert run.state == "failed" and _ti_state(run) == "failed"
    assert "all started" in log and "timed out after 3 s" in log
    _assert_all_gone(pids)


def test_airflow_execution_timeout_stops_the_whole_tree_through_on_kill(
        tmp_path: Path, run_plugin_dag, monkeypatch: pytest.MonkeyPatch, capfd, plugin_shared: Path):
    """timeoutMinutes set: Airflow's execution_timeout fires first; the hook stops the group
    (SIGTERM, SIGKILL after the grace) and the runner stops what left it."""
    monkeypatch.setenv("MECCANO_PLUGIN_KILL_GRACE", "1")
    pids = plugin_shared
    write_plugin(tmp_path / "plugins", "stubborn2:1.0", _stubborn_code(pids), timeoutMinutes=0.05)
    run = run_plugin_dag("stubborn2", tmp_path / "plugins")
    out = capfd.readouterr()
    log = out.out + out.err
    assert run.state == "failed" and _ti_state(run) == "failed"
    assert "all started" in log and "Stopping the plugin script: SIGTERM to its process group" in log
    assert "AirflowTaskTimeout" in log and "timed out after" not in log  # Airflow's timeout, not the runner's
    _assert_all_gone(pids)


def test_short_secret_is_not_redacted_and_a_four_character_one_is_also_in_xcom(
        tmp_path: Path, run_plugin_dag, monkeypatch: pytest.MonkeyPatch, capfd):
    """Airflow's own log masker skips secrets under 5 characters: a 4-character one is ours to
    redact, in the log and in the last line BashOperator pushes to XCom; 3 characters are left."""
    monkeypatch.setenv("AIRFLOW_CONN_MECCANO_IOTDB", "mysql://u:k3y%21@127.0.0.1:1/IOTDB")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws", "login": "AKIA", "password": "abc"}))
    monkeypatch.delenv("MECCANO_IOTDB_SQLITE", raising=False)
    code = ("import os\nprint('cab abc abcd', os.environ['AWS_SECRETACCESSKEY'])\n"
            "print('last=' + os.environ['MYSQL_PASSWORD'])\n")
    write_plugin(tmp_path / "plugins", "shorty:1.0", code)
    run = run_plugin_dag("shorty", tmp_path / "plugins")
    out = capfd.readouterr()
    log = out.out + out.err
    assert run.state == "success", log[-3000:]
    assert "k3y!" not in log and "last=***" in log
    assert "cab abc abcd abc" in log  # not used for redaction...
    assert "1 secret value(s) given to the plugin are shorter than 4 characters and are NOT redacted" in log
    ti = next(iter(run.get_task_instances()))
    assert ti.xcom_pull(task_ids="run") == "last=***"


def test_a_child_holding_stdout_does_not_hold_the_task(tmp_path: Path, run_plugin_dag, monkeypatch, capfd,
                                                      plugin_shared: Path):
    monkeypatch.setenv("MECCANO_PLUGIN_KILL_GRACE", "1")
    marker = plugin_shared / "child.pid"
    finished = plugin_shared / "child-finished"
    code = f"""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(120); open(sys.argv[1], 'w')",
                          {str(finished)!r}])
open({str(marker)!r}, "w").write(str(child.pid))
print("script done")
"""
    write_plugin(tmp_path / "plugins", "lingering:1.0", code)
    run = run_plugin_dag("lingering", tmp_path / "plugins")
    out = capfd.readouterr()
    assert run.state == "success", (out.out + out.err)[-3000:]
    assert "script done" in out.out + out.err
    assert not _alive(int(marker.read_text()))
    assert not finished.exists()  # stopped when the script ended; the task did not wait for it


@pytest.mark.parametrize("code", [99, 1])
def test_any_non_zero_exit_is_a_failure(tmp_path: Path, run_plugin_dag, code: int):
    write_plugin(tmp_path / "plugins", "exits:1.0", f"raise SystemExit({code})\n")
    run = run_plugin_dag("exits", tmp_path / "plugins")
    assert run.state == "failed" and _ti_state(run) == "failed"


# -- the pieces, without Airflow ------------------------------------------------------------


def test_redactor_removes_every_form_even_split_across_reads():
    from meccano.secrets.redaction import StreamRedactor

    secret = 'p@ss w/rd"é+'
    text = " | ".join([secret, quote(secret, safe=""), quote(secret, safe="").lower(), json.dumps(secret)[1:-1],
                       base64.b64encode(f"user:{secret}".encode()).decode(),
                       base64.b64encode(f"us:{secret}".encode()).decode(),
                       base64.urlsafe_b64encode(f"u:{secret}".encode()).decode()]) + "\n"
    redactor = StreamRedactor([secret])
    data = text.encode()
    out = b"".join(line for i in range(0, len(data), 5) for line in redactor.feed(data[i:i + 5]))
    out += b"".join(redactor.close())
    assert secret.encode() not in out
    assert out.count(b"***") == 7, out
    for piece in text.split(" | "):
        assert piece.strip().encode() not in out


def test_redactor_flushes_long_output_without_splitting_a_secret():
    from meccano.secrets.redaction import MAX_PENDING, StreamRedactor

    secret = "long-output-secret"
    data = (b"x" * (MAX_PENDING - 5) + secret.encode()) * 3
    redactor = StreamRedactor([secret])
    chunks = [c for i in range(0, len(data), 4096) for c in redactor.feed(data[i:i + 4096])]
    assert chunks, "output without a newline must still be flushed while the script runs"
    out = b"".join(chunks + redactor.close())
    assert secret.encode() not in out and out.count(b"***") == 3


def test_short_secrets_are_not_used_for_redaction():
    from meccano.secrets.redaction import StreamRedactor, usable_secrets

    usable, short = usable_secrets(["abc", "abcd", "", "abcd"])
    assert usable == ["abcd"] and short == ["abc"]
    assert StreamRedactor(usable).redact(b"a b c abc abcd") == b"a b c abc ***"


class _Manifest:
    """The only field script_limits reads."""

    def __init__(self, timeout_minutes: float | None = None) -> None:
        self.timeout_minutes = timeout_minutes


def test_script_limits_default_and_errors(tmp_path: Path):
    from meccano.errors import ConfigError
    from meccano.scripts.environment import script_limits
    from meccano.settings.config import load_settings

    none = _Manifest()
    assert script_limits(none, load_settings(env={})).timeout_seconds == 3600  # type: ignore[arg-type]
    assert script_limits(none,  # type: ignore[arg-type]
                         load_settings(env={"MECCANO_PLUGIN_TIMEOUT_MINUTES": "2"})).timeout_seconds == 120
    cfg = tmp_path / "c.yml"
    cfg.write_text("default:\n  plugins: {defaultTimeoutMinutes: 5, killGraceSeconds: 3}\n")
    settings = load_settings(cfg, env={})
    limits = script_limits(none, settings)  # type: ignore[arg-type]
    assert (limits.timeout_seconds, limits.grace_seconds) == (300, 3)
    own = script_limits(_Manifest(1), settings)  # type: ignore[arg-type]
    assert own.timeout_seconds == 60 and own.airflow_enforced and own.runner_deadline > 60 + 3
    assert not limits.airflow_enforced and limits.runner_deadline == 300
    # bad values stop the load (config show, the DAG meccano_config_error), not the task
    with pytest.raises(ConfigError, match=r"environment variable MECCANO_PLUGIN_TIMEOUT_MINUTES: 'soon' is not"):
        load_settings(env={"MECCANO_PLUGIN_TIMEOUT_MINUTES": "soon"})
    cfg.write_text("default:\n  plugins: {killGraceSeconds: -1}\n")
    with pytest.raises(ConfigError, match=r"plugins.killGraceSeconds .*must be a number greater than 0"):
        load_settings(cfg, env={})


@pytest.mark.parametrize("run_id", ["..", ".", "", ".hidden", "../../etc", "a/../..",
                                    "manual__2026-01-01T00:00+00:00"])
def test_run_ids_never_become_dot_folders(tmp_path: Path, run_id: str):
    import logging

    from meccano.export.context import STAGING, staging_root, work_folder
    from meccano.files.names import safe_component
    from meccano.settings.config import ExportSettings, Settings

    name = safe_component(run_id)
    assert name not in ("", ".", "..") and not name.startswith(".") and "/" not in name
    settings = Settings(export=ExportSettings(local_directory=str(tmp_path)))
    keep = tmp_path / "keep.txt"
    keep.write_text("kept")
    with work_folder(settings, run_id, logging.getLogger("test")) as folder:
        assert folder.parent == staging_root(settings) == (tmp_path / f"{STAGING}-{os.getuid()}").resolve()
        (folder / "part.gz").write_text("x")
    assert keep.read_text() == "kept" and (tmp_path / f"{STAGING}-{os.getuid()}").is_dir()


def test_report_output_dir_stays_in_its_folder():
    import tempfile

    from meccano.plugins.native import report_output_dir

    class M:
        name = "updatesByDevice"

    base = Path(tempfile.gettempdir()) / f"meccano-reports-{os.getuid()}" / "updatesByDevice"
    for run_id in ("..", ".", "../x"):
        assert report_output_dir(M(), run_id).parent == base  # type: ignore[arg-type]
