"""The HA cluster of tests/support/ha/cluster.py on CeleryExecutor, with Celery workers as separate "hosts".

Each worker is a process group of its own with its own HOME, TMPDIR, AIRFLOW_HOME (task logs),
EXPORT_LOCALDIRECTORY, hostname (``[core] hostname_callable``, tests/support/ha/hostname.py) and log-server
port: what two machines would have. They share only what docs/ha.md says hosts share: PostgreSQL
(metadata DB and Celery result backend), Redis (broker), the IOTDB and the S3 store.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.services._proc import free_port, start
from tests.support.ha.cluster import AIRFLOW, Cluster, poll

WORKER_CONCURRENCY = 2


@dataclass
class Worker:
    name: str
    root: Path  # the "host's" own disk
    log_port: int = field(default_factory=free_port)

    @property
    def export_dir(self) -> Path:
        return self.root / "export"

    def staging_files(self) -> list[Path]:
        return sorted(p for p in self.export_dir.rglob("*") if p.is_file()) if self.export_dir.exists() else []


@dataclass
class CeleryCluster(Cluster):
    broker_url: str = ""
    settings_env: dict[str, str] = field(default_factory=dict)
    workers: dict[str, Worker] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        env = super().env()
        env.update({
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
            # the driver must be named: plain db+postgresql:// selects psycopg 3 (not installed, docs/ha.md)
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.db_uri,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
            # a dead worker's running task is failed (then retried) after this many seconds without heartbeat
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            # caps the plugins' exponential retry delay (minutes in plugin.json) so a retry starts within seconds
            "AIRFLOW__CORE__MAX_TASK_RETRY_DELAY": "5",
            **self.settings_env,
        })
        env.update(extra)
        return env

    def start_worker(self, name: str) -> subprocess.Popen:
        worker = self.workers.get(name) or Worker(name, self.home.parent / name)
        self.workers[name] = worker
        for sub in ("home", "tmp", "export", "airflow"):
            (worker.root / sub).mkdir(parents=True, exist_ok=True)
        log = self.home / f"{name}.log"
        ready_before = log.read_text(errors="replace").count(" ready.") if log.exists() else 0
        env = self.env(MECCANO_HA_HOSTNAME=name, HOME=str(worker.root / "home"), TMPDIR=str(worker.root / "tmp"),
                       AIRFLOW_HOME=str(worker.root / "airflow"), EXPORT_LOCALDIRECTORY=f"{worker.export_dir}/",
                       AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(worker.log_port))
        proc = start([AIRFLOW, "celery", "worker", "--concurrency", str(WORKER_CONCURRENCY),
                      "--celery-hostname", f"{name}@%h"], log, env=env, cwd=worker.root)
        self.procs[name] = proc
        self.started.append(proc)

        def ready() -> bool:
            assert proc.poll() is None, f"{name} exited with {proc.returncode}:\n{self.log_tail()}"
            return log.read_text(errors="replace").count(" ready.") > ready_before

        poll(ready, 180, f"Celery worker {name} to be ready", interval=0.5)
        return proc

    def kill_host(self, name: str) -> None:
        """SIGKILL a worker with everything it runs (its task supervisors and tasks): the host dies."""
        proc = self.procs[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
