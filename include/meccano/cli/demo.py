"""``python -m meccano demo``: the product on its embedded default, one command.

Airflow (``airflow standalone``: scheduler, dag-processor, triggerer, API server) on
127.0.0.1 with SQLite metadata, the IOTDB in SQLite, a gateway simulator writing to
it, exports to a local folder and notifications to the log. Ctrl-C (or SIGTERM)
stops every process it started: each child runs in its own process group and the
whole group is stopped (INT, then TERM, then KILL).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

from meccano.settings.config import PROJECT_ROOT, load_settings
from meccano.settings.pool import pool_command

STATE = PROJECT_ROOT / ".demo"
PLUGIN_USER_SCRIPT = PROJECT_ROOT / "scripts" / "plugin-user.sh"


def _drop_named_acl(folder: Path, user: str) -> None:
    """An earlier demo gave the plugin user a named ACL entry (x only) on the IOTDB's folder: it would override the
    group's write permission SQLite needs there, so it goes (best effort: without setfacl there is no such entry)."""
    setfacl = shutil.which("setfacl")
    if setfacl and os.geteuid() == 0:
        subprocess.run([setfacl, "-x", f"u:{user}", str(folder)], capture_output=True, timeout=30)


def open_to_plugin_user(folder: Path) -> None:
    """Script plugins run as another OS user and are given the demo's SQLite IOTDB: that user must be able to
    pass through every folder above it (a ``--state`` below /root or a pytest folder is not, by default).
    ``scripts/plugin-user.sh --passage`` grants it (x only, an ACL entry for that user) where it is missing;
    only a root demo can, and only a root worker runs scripts as another user without sudo."""
    if os.geteuid() != 0 or not PLUGIN_USER_SCRIPT.is_file():
        return
    done = subprocess.run([str(PLUGIN_USER_SCRIPT), "--passage", str(folder.resolve())], capture_output=True,
                          text=True, timeout=120)
    if done.returncode:
        print(f"demo: script plugins may not reach the IOTDB in {folder}: {done.stderr.strip()[-300:]}; choose a "
              "--state folder every user may pass through", file=sys.stderr)


# Airflow's own knobs for the task log files and folders it creates (checked in Airflow 3.3's config.yml and
# airflow.sdk.log.init_log_file): the worker's alone, where script plugins run as another local user.
PRIVATE_TASK_LOGS = {"AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS": "0o700",
                     "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS": "0o600"}


def keep_state_private(state: Path) -> None:
    """Everything the demo and its Airflow create is the worker's alone (umask 077): task logs, the components'
    logs and Airflow's SQLite ``airflow.db`` (users, connections, run confs) were readable by the plugin user, a
    local user like any other. Folders of an earlier demo lose their bits for others (group bits are kept: on a
    folder with an ACL they are its mask, and the plugin user's passage to the IOTDB is such an entry); files
    of the metadata database become 0600. Call before :func:`open_to_plugin_user`."""

    os.umask(0o077)
    home = state / "airflow"
    for folder in (state, state / "logs", home, home / "logs", state / "reports", state / "export-work"):
        info = os.lstat(folder) if os.path.lexists(folder) else None
        if info is not None and stat.S_ISDIR(info.st_mode):
            os.chmod(folder, stat.S_IMODE(info.st_mode) & ~0o007)
    for name in ("airflow.db", "airflow.db-wal", "airflow.db-shm", "airflow.db-journal"):
        info = os.lstat(home / name) if os.path.lexists(home / name) else None
        if info is not None and stat.S_ISREG(info.st_mode):
            os.chmod(home / name, stat.S_IMODE(info.st_mode) & ~0o077)


def demo_environment(port: int, state: Path = STATE) -> dict[str, str]:
    home = state / "airflow"
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        # the operator's own Airflow plugins; the web view comes from the installed package (entry point)
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        # one host: a plugin whose interpreter is missing here (R without Rscript) is created paused
        "MECCANO_PLUGIN_PAUSE_WITHOUT_INTERPRETER": "true",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "demo-passwords.json"),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(port + 1),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(port + 2),
        **PRIVATE_TASK_LOGS,
        # a folder of its own: script plugins (another OS user) get this folder, where SQLite keeps its WAL files
        "MECCANO_IOTDB_SQLITE": str(state / "iotdb" / "iotdb.sqlite"),
        "MECCANO_REPORTS_DIR": str(state / "reports"),
        "EXPORT_LOCALDIRECTORY": str(state / "export-work"),
        "EXPORT_BUCKET": "",
        # airflow standalone starts its components as `airflow ...`: the venv's bin first.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }


def console_token(state: Path) -> str:
    """The console's read-only token: MECCANO_WEB_CONSOLE_TOKEN, else one generated once per state folder."""
    given = os.environ.get("MECCANO_WEB_CONSOLE_TOKEN", "")
    if given:
        return given
    path = state / "console-token"
    if not path.is_file():

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc.

    ``kill(-pgid, 0)`` is not enough: a zombie whose parent never reaps it (pid 1 of some
    containers) still counts as a member.
    """
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != b"Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _group_alive(pgid: int) -> bool:
    return bool(group_members(pgid))


def _stop_group(proc: subprocess.Popen[bytes], name: str) -> None:
    """Stop a child's whole process group: INT, then TERM, then KILL, until no member is left.

    Waiting for the child alone is not enough: ``airflow standalone`` leaves its triggerer
    and the LocalExecutor's worker processes in the group, and they outlive it.
    """
    pgid = proc.pid
    for sig, wait in ((signal.SIGINT, 20), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        if not _group_alive(pgid):
            break
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(pgid):
            if proc.poll() is None:
                try:
                    proc.wait(0.2)
                except subprocess.TimeoutExpired:
                    pass
            else:
                time.sleep(0.2)
    proc.poll()
    if _group_alive(pgid):
        print(f"demo: {name} (process group {pgid}) did not stop", file=sys.stderr)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=3) as resp:
            body = json.loads(resp.read())
        return all(v.get("status") == "healthy" for k, v in body.items()
                   if k in ("metadatabase", "scheduler", "dag_processor"))
    except Exception:  # noqa: BLE001 - not up yet
        return False


@dataclass(frozen=True)
class StartupPlan:
    """Which enabled plugins' DAGs the demo runs, and which it leaves paused because this machine lacks
    their engine's interpreter (with the start-up line saying so). Disabled plugins stay paused anyway."""

    unpaused: list[str] = field(default_factory=list)
    held: dict[str, str] = field(default_factory=dict)  # DAG id -> the start-up line naming what is missing


def startup_plan(root: Path | None = None) -> StartupPlan:
    """The demo's plan for the plugins under ``root`` (the configured folder when None), from the one
    check :func:`meccano.scripts.engines.missing_interpreter`, on this host's PATH."""
    # lazy: meccano.contract.manifest costs 2 ms at import (python -X importtime)
    from meccano.contract.manifest import display_name

    # lazy: meccano.plugins.discovery costs 15 ms at import (python -X importtime)
    from meccano.plugins.discovery import discover

    # lazy: meccano.scripts.engines costs 16 ms at import (python -X importtime)
    from meccano.scripts.engines import missing_interpreter

    plan = StartupPlan()
    for load in discover(root).active:
        manifest = load.manifest
        if manifest is None or not manifest.enabled:
            continue
        spec = missing_interpreter(manifest.engine)
        if spec is None:
            plan.unpaused.append(manifest.dag_id)
        else:
            plan.held[manifest.dag_id] = (
                f"plugin {display_name(load.folder)} needs {spec.needs} ({spec.interpreter} not found on PATH): "
                f"left paused; install {spec.package} to run it")
    return plan


def web_plugin_installed() -> bool:
    """Airflow mounts the web view from the installed package's ``airflow.plugins`` entry point
    (pyproject.toml): an install that predates it, or a bare PYTHONPATH, has no web view."""

    return any(ep.name == "meccano_web" for ep in entry_points(group="airflow.plugins"))


def _pause_held(airflow: str, plan: StartupPlan, env: dict[str, str]) -> None:
    """Pause the held plugins' DAGs left unpaused by an earlier demo on the same state folder (a new DAG is
    created paused: MECCANO_PLUGIN_PAUSE_WITHOUT_INTERPRETER). Before the scheduler starts: no run begins."""
    if not plan.held:
        return

    pattern = "^(" + "|".join(re.escape(dag_id) for dag_id in sorted(plan.held)) + ")$"
    subprocess.run([airflow, "dags", "pause", "--treat-dag-id-as-regex", "--yes", pattern], env=env, check=True,
                   capture_output=True, timeout=180)


class LogRelay:
    """Prints, as they come, the lines of a child's log that carry ``marker`` (the simulator's back-fill
    progress), so the demo's terminal says how far the start-up is."""

    def __init__(self, path: Path, marker: str) -> None:
        self.path, self.marker = path, marker
        self.offset = path.stat().st_size if path.exists() else 0  # an earlier run's lines are not news

    def __call__(self) -> None:
        try:
            with self.path.open("rb") as log:
                log.seek(self.offset)
                data = log.read(1 << 20)
        except OSError:
            return
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode("utf-8", errors="replace").splitlines():
            if self.marker in line:
                print(f"demo: {line[line.index(self.marker):]}", flush=True)


def _wait_healthy(port: int, children: list[tuple[str, subprocess.Popen[bytes]]], logs: Path,
                  stop: Callable[[], None], relay: Callable[[], None] = lambda: None) -> bool:
    """Wait up to 10 minutes for Airflow's health check, relaying progress lines; False (said on stderr) when
    it does not come, or when a child exits first (then everything is stopped)."""
    deadline = time.monotonic() + 600
    while not _healthy(port):
        relay()
        if time.monotonic() > deadline:
            print(f"demo: Airflow not healthy after 10 minutes; see {logs / 'airflow.log'}", file=sys.stderr)
            return False
        for name, proc in children:
            if proc.poll() is not None:
                print(f"demo: {name} exited with {proc.returncode}; see {logs / (name + '.log')}", file=sys.stderr)
                stop()
                return False
        time.sleep(1)
    return True


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m meccano demo")
    parser.add_argument("--port", type=int, default=int(os.environ.get("MECCANO_DEMO_PORT", "8080")))
    parser.add_argument("--stores", type=int, default=5, help="simulated stores")
    parser.add_argument("--devices-per-store", type=int, default=6)
    parser.add_argument("--backfill-days", type=int, default=3, help="days of history written at start")
    parser.add_argument("--state", default=str(STATE), help="folder for the demo's databases and logs")
    parser.add_argument("--fresh", action="store_true", help="start from empty databases")
    parser.add_argument("--console-port", type=int, default=int(os.environ.get("MECCANO_DEMO_CONSOLE_PORT", "8000")),
                        help="the original web console's port: GET /plugins and report images (token)")
    return parser.parse_args(argv)


def _prepare_state(args: argparse.Namespace) -> tuple[Path, dict[str, str]]:
    """The demo's state folder (emptied with ``--fresh``) and the environment of everything it starts; this
    process's own environment is left as it is (settings are read from the returned one)."""
    state = Path(args.state)
    if args.fresh and state.exists():
        shutil.rmtree(state)
    (state / "logs").mkdir(parents=True, exist_ok=True)
    (state / "iotdb").mkdir(exist_ok=True)
    keep_state_private(state)
    # the way to the IOTDB's folder, not the folder itself: a named ACL entry there (x only) would override the
    # group's rwx that share_sqlite_iotdb gives it when a script starts (SQLite writes its journal there)
    open_to_plugin_user(state)
    env = demo_environment(args.port, state)

    _drop_named_acl(state / "iotdb", load_settings(env=env).plugins.run_as)
    env["MECCANO_WEB_CONSOLE_TOKEN"] = console_token(state)
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    # A fixed login for a demo bound to 127.0.0.1 only.
    (home / "demo-passwords.json").write_text(json.dumps({"admin": "admin"}))
    return state, env


class _Processes:
    """The demo's child processes: each in a session of its own with its log in the state folder; stopped, the
    last started first, exactly once."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._stopping = False

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the child
        proc = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=PROJECT_ROOT)
        self.children.append((name, proc))
        return proc

    def all_running(self) -> bool:
        return all(proc.poll() is None for _, proc in self.children)

    def stop(self, *_: object) -> None:
        if self._stopping:
            return
        self._stopping = True
        print("\ndemo: stopping ...", flush=True)
        for name, proc in reversed(self.children):
            _stop_group(proc, name)
        print("demo: stopped; nothing left running", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    t0 = time.monotonic()
    state, env = _prepare_state(args)
    from meccano.iotdb.db import Iotdb  # lazy: meccano.iotdb.db costs 2 ms at import (python -X importtime)

    # lazy: meccano.iotdb.schema costs 3 ms at import (python -X importtime)
    from meccano.iotdb.schema import ensure_schema

    settings = load_settings(env=env)
    db = Iotdb.from_settings(settings)
    ensure_schema(db)
    db.dispose()
    procs = _Processes(env, state / "logs")

    def terminate(*_: object) -> None:
        procs.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, terminate)
    # Ctrl-C stops the demo even when its shell started it with SIGINT ignored (a background job of a
    # non-interactive shell, nohup): Python keeps an inherited "ignore", so set the handler explicitly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _run(args, state, env, procs, t0)
    except KeyboardInterrupt:
        return 0
    finally:
        procs.stop()


def _run(args: argparse.Namespace, state: Path, env: dict[str, str], procs: _Processes, t0: float) -> int:
    """The demo's three steps, then wait until Ctrl-C or a process exits."""

    sim = [sys.executable, "-m", "meccano.cli.simulator", "--stores", str(args.stores),
           "--devices-per-store", str(args.devices_per_store), "--backfill-days", str(args.backfill_days)]
    relay = LogRelay(state / "logs" / "simulator.log", "backfill:")
    procs.spawn("simulator", sim)  # part of the package: a demo without its fleet is not a demo
    airflow = str(Path(sys.executable).parent / "airflow")
    print("demo: step 1 of 3: Airflow's metadata database (airflow db migrate) ...", flush=True)
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    relay()
    if not web_plugin_installed():
        print("demo: the package's `airflow.plugins` entry point meccano_web is not installed, so Airflow "
              "serves no web view (/meccano/): reinstall the package (scripts/install-venv.sh)", file=sys.stderr)
    plan = startup_plan(Path(env["MECCANO_PLUGINS_DIR"]) if env.get("MECCANO_PLUGINS_DIR") else None)
    for line in plan.held.values():
        print(f"demo: {line}", flush=True)
    _pause_held(airflow, plan, env)
    # MYSQL_CONNECTIONLIMIT: the pool 'iotdb' every plugin task takes a slot of
    print("demo: step 2 of 3: the pool 'iotdb' (airflow pools set) ...", flush=True)
    subprocess.run(pool_command(load_settings(env=env)), env=env, check=True, capture_output=True, timeout=180)
    procs.spawn("airflow", [airflow, "standalone"])
    # The original web console's URL shape: GET http://127.0.0.1:<console port>/plugins (token)
    procs.spawn("console", [sys.executable, "-m", "uvicorn", "--factory", "meccano.web.console:create_console_app",
                            "--host", "127.0.0.1", "--port", str(args.console_port), "--no-access-log"])
    print(f"demo: step 3 of 3: starting Airflow on http://127.0.0.1:{args.port} (logs in {state / 'logs'}) ...",
          flush=True)
    if not _wait_healthy(args.port, procs.children, state / "logs", procs.stop, relay):
        return 1
    relay()
    print(_banner(args, env, plan, time.monotonic() - t0), flush=True)
    while procs.all_running():
        time.sleep(1)
    print("demo: a process exited unexpectedly; stopping", file=sys.stderr)
    return 1


def _banner(args: argparse.Namespace, env: dict[str, str], plan: StartupPlan, up: float) -> str:
    held = (f"\n  Left paused:       {', '.join(plan.held)}   (interpreter not installed here, see above)"
            if plan.held else "")
    return f"""
Meccano ServiceManager demo is up ({up:.0f} s)
  Airflow UI:        http://127.0.0.1:{args.port}/      login: admin / admin
  Meccano web view:  http://127.0.0.1:{args.port}/meccano/
  Plugin listing:    http://127.0.0.1:{args.port}/meccano/plugins
  Web console API:   http://127.0.0.1:{args.console_port}/plugins   (the original console's URL)
                     header X-Meccano-Token: {env['MECCANO_WEB_CONSOLE_TOKEN']}
  Unpaused DAGs:     {', '.join(plan.unpaused) or '-'}{held}
  IOTDB (SQLite):    {env['MECCANO_IOTDB_SQLITE']}
Press Ctrl-C to stop everything."""
