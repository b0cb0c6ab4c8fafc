"""Does this installation run tasks on more than one host? Read from Airflow's ``[core] executor``.

A local folder (the report store, a ``file://`` export target) is only one store when every task and
every API server sees the same disk: with Airflow's ``LocalExecutor`` all tasks run on the scheduler's
host; any other executor (Celery, Kubernetes, Edge, a custom one, or a list naming one) may run them
elsewhere. A folder every host mounts (NFS, EFS, ...) can be declared shared by a setting
(``reports.shared``, ``export.localTargetShared``).
"""

from __future__ import annotations

import os
from pathlib import Path

# Executors that run every task on the scheduler's own host.
SINGLE_HOST_EXECUTORS = frozenset({"LocalExecutor", "SequentialExecutor", "DebugExecutor"})



def configured_executors() -> list[str]:
    """The class names of Airflow's ``[core] executor`` (a comma-separated list; ``alias:module.Class``
    and dotted paths allowed)."""
    from airflow.sdk import conf  # lazy: airflow.sdk costs 1130 ms at import (python -X importtime)

    raw = conf.get("core", "executor", fallback="LocalExecutor") or "LocalExecutor"
    return [item.strip().rsplit(":", 1)[-1].rsplit(".", 1)[-1] for item in raw.split(",") if item.strip()]


def spreading_executors() -> list[str]:
    """The configured executors that may run a task on another host (empty: one host)."""
    return [name for name in configured_executors() if name not in SINGLE_HOST_EXECUTORS]


def splitting_executors(location: str, shared: bool) -> list[str]:
    """The executors that would split a ``file://`` location between hosts (each task on its own disk); empty for
    another location, a folder declared ``shared`` (a volume every host mounts), or one host."""
    if not location.startswith("file://") or shared:
        return []
    return spreading_executors()


def airflow_home() -> Path:
    """Airflow's own ``AIRFLOW_HOME`` (default ``~/airflow``): where the product keeps what has no setting."""
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
