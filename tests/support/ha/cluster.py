"""Two schedulers, a dag-processor and an API server on PostgreSQL, as separate processes.

Every process runs in its own process group (``start_new_session``) so that teardown can
stop it with everything it spawned (LocalExecutor workers, task supervisors).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2

from tests.services._proc import free_port, free_ports, start

ROOT = Path(__file__).resolve().parents[3]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def poll(check: Callable[[], Any], timeout: float, what: str, interval: float = 1.0) -> Any:
    """Return ``check()``'s first truthy value; fail with ``what`` after ``timeout`` seconds.

    The timeout is a generous safety net against hangs, never the thing under test.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # not ready yet
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                         + (f" (last error: {last_error!r})" if last_error else ""))


@dataclass
class Cluster:
    """The processes of one HA deployment on 127.0.0.1 (see docs/ha.md)."""

    home: Path
    plugins_dir: Path
    db_uri: str
    dsn: str
    api_port: int = field(default_factory=free_port)
    # the log servers' ports of its own (defaults 8793/8794 would clash with another deployment of a parallel test)
    log_ports: tuple[int, int] = field(default_factory=lambda: tuple(free_ports(2)))  # type: ignore[arg-type]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    started: list[subprocess.Popen] = field(default_factory=list)  # all, including replaced ones
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    extra_env: dict[str, str] = field(default_factory=dict)  # more variables for every process (a test's secrets)

    # --- environment -----------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AIRFLOW", "PYTEST", "MECCANO_", "_AIRFLOW"))}
        env.update({
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_uri,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.api_port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
            "AIRFLOW__API__SECRET_KEY": self.jwt_secret,
            # HA tuning (docs/ha.md): how soon a survivor treats a silent scheduler as dead
            # and takes over the task instances it had queued.
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "30",
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "10",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_ports[0]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.log_ports[1]),
            "MECCANO_PLUGINS_DIR": str(self.plugins_dir),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.support.ha.hostname.from_env",
            "PYTHONPATH": str(ROOT),  # tests.support.ha.hostname; meccano itself is the installed package
        })
        env.update(self.extra_env)
        env.update(extra)
        return env

    def run(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run([AIRFLOW, *args], env=self.env(), capture_output=True, text=True, timeout=timeout)
        if done.returncode:
            raise RuntimeError(f"airflow {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}"
                               f"\n{done.stderr[-3000:]}")
        return done.stdout

    # --- processes -------------------------------------------------------------------
    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = self.home / f"{name}.log"
        proc = start([AIRFLOW, *args], log, env=self.env(MECCANO_HA_HOSTNAME=name), cwd=self.home)
        self.procs[name] = proc
        self.started.append(proc)
        return proc

    def start_scheduler(self, name: str) -> subprocess.Popen:
        return self.start(name, "scheduler", "--skip-serve-logs")

    def start_services(self) -> None:
        """The API server (also the tasks' execution API) and the dag-processor."""
        self.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(self.api_port),
                   "--workers", "1")
        self.start("dag-processor", "dag-processor")

    def migrate_and_start_services(self, timeout: float, pool_slots: int = 10) -> None:
        """``airflow db migrate``, the ``iotdb`` pool (what ``meccano pool sync`` does), then the services;
        returns once the API server answers (tasks talk to it: it must answer before any scheduler queues one)."""
        self.run("db", "migrate")
        self.run("pools", "set", "iotdb", str(pool_slots), "MYSQL_CONNECTIONLIMIT")
        self.start_services()
        poll(self.healthy, timeout, "the API server to answer /api/v2/monitor/health")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal only the process itself (a crash of that scheduler), not its group."""
        os.kill(self.procs[name].pid, sig)
        self.procs[name].wait(30)

    def stop_all(self, grace: float = 30) -> None:
        """Stop every process group this cluster started, the killed ones' included.

        A SIGKILLed scheduler leaves its LocalExecutor workers behind in its process
        group: they are killed here too. All groups get SIGTERM at once, then SIGKILL.
        """
        for proc in self.started:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace
        for proc in self.started:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.started:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if proc.poll() is None:
                proc.wait(10)

    def group_alive(self) -> list[int]:
        """Live (non-zombie) processes in any process group this cluster started."""
        groups = {proc.pid for proc in self.started}
        alive = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) in groups:
                alive.append(int(stat.parent.name))
        return alive

    def log_tail(self, lines: int = 40) -> str:
        out = []
        for name in self.procs:
            path = self.home / f"{name}.log"
            if path.exists():
                out.append(f"--- {name}.log\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)

    # --- metadata DB and REST API ----------------------------------------------------
    def query(self, sql: str, *params: Any) -> list[tuple]:
        with psycopg2.connect(self.dsn) as con, con.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
        con.close()
        return rows

    def api(self, method: str, path: str, body: dict | None = None) -> Any:
        req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}/api/v2{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health", timeout=5):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def running_scheduler_jobs(self, fresh_seconds: float = 30) -> dict[int, str]:
        """Scheduler jobs marked running whose heartbeat is recent: ``{job id: hostname/pid}``."""
        rows = self.query(
            "SELECT id, hostname, unixname FROM job WHERE job_type = 'SchedulerJob' AND state = 'running' "
            "AND latest_heartbeat > now() - make_interval(secs => %s)", fresh_seconds)
        return {r[0]: r[1] for r in rows}

    def scheduler_running_slow_task(self, jobs: dict[str, int]) -> str | None:
        """The scheduler of ``jobs`` (``{name: job id}``) that queued an ``ha_slow_*`` task running right now,
        or None: the one whose kill orphans running work."""
        rows = self.query("SELECT queued_by_job_id FROM task_instance WHERE state = 'running' "
                          "AND dag_id LIKE 'ha_slow_%%'")
        by_job = {job: name for name, job in jobs.items()}
        return next((by_job[r[0]] for r in rows if r[0] in by_job), None)

    def job_of(self, name: str, after_id: int = 0) -> int | None:
        """The running job id of process ``name`` (its hostname, see tests/support/ha/hostname.py)."""
        rows = self.query("SELECT max(id) FROM job WHERE job_type = 'SchedulerJob' AND state = 'running' "
                          "AND hostname = %s AND id > %s", name, after_id)
        return rows[0][0]

    def start_schedulers(self, *names: str, after_id: int = 0, timeout: float = 180) -> dict[str, int]:
        """Start the schedulers together; return ``{name: job id}`` once each has registered."""
        procs = {name: self.start_scheduler(name) for name in names}

        def registered() -> dict[str, int] | None:
            for name, proc in procs.items():
                assert proc.poll() is None, f"{name} exited with {proc.returncode}:\n{self.log_tail()}"
            jobs = {name: self.job_of(name, after_id) for name in names}
            return jobs if all(jobs.values()) else None  # type: ignore[return-value]

        return poll(registered, timeout, f"schedulers {', '.join(names)} to register their jobs")


def wait(check: Callable[[], Any], timeout: float, what: str, interval: float = 1.0,
         describe: Callable[[], str] | None = None) -> Any:
    """Like :func:`tests.support.ha.cluster.poll`, but an assertion inside ``check`` fails at once (a failed run
    must not look like a slow one), and a timeout says what the cluster was doing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (psycopg2.OperationalError, urllib.error.URLError, OSError):
            value = None  # a service restarting: ask again
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                         + (f"\n{describe()}" if describe else ""))
