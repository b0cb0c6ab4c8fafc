"""Script plugins run as another OS user (``plugins.runAs``): through a real DAG run (``dag.test()``), a
hostile script probes every process's environment and memory, its ancestors' and PID 1's, and tries to
write where the worker keeps its files. It finds no secret of the worker and writes nothing of the worker's,
while it still gets its own variables and publishes its report.

The worker's secrets: ``/proc/<pid>/environ`` shows a process's environment as it was when it started, so
a variable set in this (already running) test process would not show there even without the boundary. A
decoy process started with the secrets in its environment stands for the worker's task supervisor, the
Celery parent and PID 1 of a container; the script's real ancestors (the runner, this process as the
worker) and PID 1 of this host are probed as well.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pwd
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.services._proc import wait_until
from tests.support.plugins import write_plugin

JWT = "jwt-secret-0f-the-api-servers"
FERNET = "fernet-key-0f-the-metadata-db"
DB_PASSWORD = "metadata-db-pa55word"
IOTDB_PW = "iotdb-pa55word-given"
RUN_AS = "meccano-plugin"
PNG = b"\x89PNG\r\n\x1a\n"

PROBE = r'''
import json, os, sys
params = json.loads(os.environ["MECCANO_PARAMETERS"])
me = os.getpid()


def owner(pid):
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


ancestors, pid = [], os.getppid()
while pid > 0:
    ancestors.append(pid)
    try:
        stat = open(f"/proc/{pid}/stat").read()
        pid = int(stat[stat.rfind(")") + 2:].split()[1])
    except OSError:
        break
found = {"uid": os.getuid(), "euid": os.geteuid(), "groups": os.getgroups(), "ancestors": ancestors,
         "read": {}, "refused": [], "opened": [], "written": [], "not_written": []}
pids = sorted({int(p) for p in os.listdir("/proc") if p.isdigit()} | set(ancestors) | {1})
for pid in pids:
    if pid == me:
        continue
    try:
        data = open(f"/proc/{pid}/environ", "rb").read()
        found["read"][str(pid)] = {"uid": owner(pid), "environ": data.decode("utf-8", "replace")}
    except OSError:
        found["refused"].append(pid)
    for what in ("mem", "root", "cwd", "fd"):
        path = f"/proc/{pid}/{what}"
        try:
            if what == "mem":
                open(path, "rb").close()
            else:
                os.listdir(path)
            found["opened"].append([pid, owner(pid), what])
        except OSError:
            pass
own = os.environ
for target in params["targets"] + [own["MECCANO_REPORT_DIR"], own["HOME"], own["TMPDIR"], os.getcwd()]:
    try:
        with open(os.path.join(target, f"probe-{me}"), "w") as handle:
            handle.write("x")
        found["written"].append(target)
    except OSError:
        found["not_written"].append(target)
found["given"] = sorted(own)
found["mysql_password_given"] = own.get("MYSQL_PASSWORD") == params["expect_password"]
text = json.dumps(found, sort_keys=True)
print("FOUND=" + text, flush=True)
open(os.path.join(own["MECCANO_REPORT_DIR"], "found.json"), "w").write(text)
open(os.path.join(own["MECCANO_REPORT_DIR"], "output.png"), "wb").write(PNG)
'''

R_PROBE = r'''
ppid <- function(pid) {
  line <- tryCatch(readLines(sprintf("/proc/%d/stat", pid), warn = FALSE), error = function(e) "")
  if (length(line) == 0 || line == "") return(0L)
  as.integer(strsplit(sub(".*\\) ", "", line), " ")[[1]][2])
}
decoy <- as.integer(sub('.*"decoy": *([0-9]+).*', "\\1", Sys.getenv("MECCANO_PARAMETERS")))
pids <- c(1L, decoy)
pid <- ppid(Sys.getpid())
while (pid > 0L) { pids <- c(pids, pid); pid <- ppid(pid) }
for (p in unique(pids)) {
  got <- tryCatch(suppressWarnings(readBin(sprintf("/proc/%d/environ", p), "raw", 1e6)),
                  error = function(e) NULL)
  if (is.null(got)) cat(sprintf("R-REFUSED %d\n", p)) else
    cat(sprintf("R-READ %d %s\n", p, rawToChar(got[got != as.raw(0)])))
}
cat(sprintf("R-UID %s\n", system("id -u", intern = TRUE)))
cat(sprintf("R-GIVEN %s\n", nchar(Sys.getenv("MYSQL_PASSWORD")) > 0))
writeBin(as.raw(c(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)),
         file.path(Sys.getenv("MECCANO_REPORT_DIR"), "output.png"))
'''


@pytest.fixture
def decoy() -> Iterator[int]:
    """A root process whose environment holds the worker's secrets from its start (a supervisor, PID 1)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AIRFLOW__API_AUTH__JWT_SECRET": JWT,
           "AIRFLOW__CORE__FERNET_KEY": FERNET,
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://airflow:{DB_PASSWORD}@127.0.0.1/airflow"}
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=env)
    environ = Path(f"/proc/{proc.pid}/environ")
    with contextlib.suppress(RuntimeError):  # until the child has exec'd: in between its environ reads empty
        wait_until(lambda: JWT in environ.read_text(errors="replace"), 30, "the decoy's exec")
    assert JWT in environ.read_text(errors="replace")  # the worker's user can read it
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.fixture
def worker_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MECCANO_IOTDB", f"mysql://u:{quote(IOTDB_PW, safe='')}@127.0.0.1:1/IOTDB")
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", JWT)
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", FERNET)
    monkeypatch.delenv("MECCANO_IOTDB_SQLITE", raising=False)
    monkeypatch.setenv("MECCANO_REPORTS_DIR", str(tmp_path / "reports"))


def _log(capfd: pytest.CaptureFixture[str]) -> str:
    out = capfd.readouterr()
    return out.out + out.err


def _published(name: str, filename: str) -> bytes:
    from meccano.reports.store import ReportStore
    from meccano.settings.config import load_settings

    store = ReportStore.from_settings(load_settings())
    latest = store.latest(name)
    assert latest is not None, f"no report of {name} was published"
    return store.read(name, latest.stamp, filename)


def test_a_python_script_reads_no_process_environment_and_writes_nothing_of_the_worker(
        tmp_path: Path, run_plugin_dag, worker_env, decoy: int, capfd):
    plugin_user = pwd.getpwnam(RUN_AS)
    (tmp_path / "worker-files").mkdir()
    targets = [str(Path.home()), str(tmp_path / "worker-files"), str(tmp_path / "plugins" / "probe:1.0"),
               str(Path(__file__).resolve().parents[2] / "include"), "/etc", "/proc/1"]
    folder = write_plugin(tmp_path / "plugins", "probe:1.0", PROBE.replace("PNG", repr(PNG)), type="report",
                          parameters={"targets": targets, "expect_password": IOTDB_PW, "decoy": decoy})
    run = run_plugin_dag("probe", tmp_path / "plugins")
    log = _log(capfd)
    assert run.state == "success", log[-3000:]
    report = _published("probe", "found.json")
    found = json.loads(report)
    for secret in (JWT, FERNET, DB_PASSWORD, IOTDB_PW):
        assert secret not in log and secret.encode() not in report, secret
    assert (found["uid"], found["euid"], found["groups"]) == (plugin_user.pw_uid, plugin_user.pw_uid, [])
    # every ancestor (the runner, this worker process, ...), PID 1 and the decoy: refused
    assert set(found["ancestors"]) | {1, decoy} <= set(found["refused"])
    # what it could read at all belongs to its own user, and nothing of another user could be opened
    assert {v["uid"] for v in found["read"].values()} <= {plugin_user.pw_uid}
    assert [o for o in found["opened"] if o[1] != plugin_user.pw_uid] == []
    # its own variables, and the folders of its run, are there; the worker's folders are not writable
    assert {"MYSQL_HOST", "MYSQL_PASSWORD", "MECCANO_REPORT_DIR", "HOME", "TMPDIR"} <= set(found["given"])
    assert found["mysql_password_given"] is True
    assert found["not_written"] == targets, found["written"]
    assert len(found["written"]) == 4  # report folder, HOME, TMPDIR, the copy it runs in
    assert not any(p.name.startswith("probe-") for p in (tmp_path / "worker-files").iterdir())
    assert not any(p.name.startswith("probe-") for p in folder.iterdir())
    assert _published("probe", "output.png") == PNG


def test_an_r_script_cannot_read_its_ancestors_or_pid_1(tmp_path: Path, run_plugin_dag, worker_env, decoy: int,
                                                       capfd):
    write_plugin(tmp_path / "plugins", "rprobe:1.0", R_PROBE, engine="R", ext=".R", type="report",
                 parameters={"decoy": decoy})
    run = run_plugin_dag("rprobe", tmp_path / "plugins")
    log = _log(capfd)
    assert run.state == "success", log[-3000:]
    for secret in (JWT, FERNET, DB_PASSWORD, IOTDB_PW):
        assert secret not in log, secret
    assert "R-READ" not in log
    refused = {int(m) for m in re.findall(r"R-REFUSED (\d+)\s", log)}
    assert {1, decoy, os.getpid()} <= refused and len(refused) >= 4  # PID 1, the decoy, this worker, the runner
    assert re.search(rf"R-UID {pwd.getpwnam(RUN_AS).pw_uid}\s", log) and "R-GIVEN TRUE" in log
    assert _published("rprobe", "output.png") == PNG


def test_a_missing_plugin_user_fails_the_task_naming_it_and_the_fix(tmp_path: Path, run_plugin_dag, worker_env,
                                                                   monkeypatch: pytest.MonkeyPatch, capfd):
    monkeypatch.setenv("MECCANO_PLUGIN_RUN_AS", "meccano-nobody")
    marker = tmp_path / "ran"
    write_plugin(tmp_path / "plugins", "nouser:1.0", f"open({str(marker)!r}, 'w')\n")
    run = run_plugin_dag("nouser", tmp_path / "plugins")
    log = _log(capfd)
    assert run.state == "failed"
    assert "PluginUserMissing" in log and "there is no OS user 'meccano-nobody'" in log
    assert "scripts/plugin-user.sh" in log
    assert not marker.exists()


def test_root_is_refused_as_the_plugin_user() -> None:
    from meccano.errors import ConfigError
    from meccano.settings.config import load_settings

    with pytest.raises(ConfigError, match="MECCANO_PLUGIN_RUN_AS"):
        load_settings(env={"MECCANO_PLUGIN_RUN_AS": "root"})
    with pytest.raises(ConfigError, match="not an OS user name"):
        load_settings(env={"MECCANO_PLUGIN_RUN_AS": "bad user;rm"})


def _as_user(uid: int, gid: int, job) -> str:
    """``job()``'s text, computed in a child process running as ``uid``: a worker whose own user that is."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: become that worker, answer, exit without running the parent's cleanup
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            answer = job()
        except BaseException as exc:  # noqa: BLE001 - whatever it is, the parent asserts on it
            answer = f"{type(exc).__name__}: {exc}"
        os.write(write, answer.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        text = pipe.read().decode()
    os.waitpid(pid, 0)
    return text


def test_the_workers_own_user_is_refused_as_the_plugin_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker running as the user ``plugins.runAs`` names (the image's ``airflow`` named there, say): its task
    fails before anything starts, and ``config show``/``db check`` name the setting."""
    from meccano.scripts.isolation import isolation_missing
    from meccano.scripts.operators import check_plugin_user
    from meccano.settings.config import load_settings

    entry = pwd.getpwnam(RUN_AS)
    monkeypatch.setenv("MECCANO_PLUGIN_RUN_AS", RUN_AS)
    settings = load_settings()

    def task() -> str:
        check_plugin_user(settings)
        return "started"

    refused = _as_user(entry.pw_uid, entry.pw_gid, task)
    assert refused.startswith("PluginUserMissing: plugins.runAs (MECCANO_PLUGIN_RUN_AS): "
                              f"'{RUN_AS}' is this worker's own OS user (uid {entry.pw_uid})"), refused

    def show() -> str:
        return "\n".join(map(str, isolation_missing(settings)))

    shown = _as_user(entry.pw_uid, entry.pw_gid, show)
    assert f"MISSING a usable OS user for plugins.runAs ('{RUN_AS}'): plugins.runAs (MECCANO_PLUGIN_RUN_AS): " \
        f"'{RUN_AS}' is this worker's own OS user" in shown, shown
    assert _as_user(0, 0, task) == "started"  # the same user for a root worker: allowed


def test_a_user_with_roots_uid_or_group_is_refused() -> None:
    from meccano.scripts.isolation import plugin_user_problem
    from meccano.settings.config import load_settings

    settings = load_settings(env={"MECCANO_PLUGIN_RUN_AS": RUN_AS})
    assert plugin_user_problem(settings, euid=50000) is None
    as_root = dataclasses.replace(settings, plugins=settings.plugins.model_copy(update={"run_as": "root"}))
    problem = plugin_user_problem(as_root, euid=50000)  # the name check of the settings aside: by uid
    assert problem is not None and problem.startswith("plugins.runAs (MECCANO_PLUGIN_RUN_AS): 'root' has uid 0")
