"""Does this installation run tasks on more than one host? Read from Airflow's ``[core] executor``.

A local folder (the report store, a ``file://`` export target) is only one store when every task and
every API server sees the same disk: with Airflow's ``LocalExecutor`` all tasks run on the scheduler's
host; any other executor (Celery, Kubernetes, Edge, a custom one, or a list naming one) may run them
elsewhere. A folder every host mounts (NFS, EFS, ...) can be declared shared by a setting, which
:func:`declared_shared` reads.
"""

from __future__ import annotations

import os
from typing import Any

from meccano.errors import ConfigError

# Executors that run every task on the scheduler's own host.
SINGLE_HOST_EXECUTORS = frozenset({"LocalExecutor", "SequentialExecutor", "DebugExecutor"})



def configured_executors() -> list[str]:
    """The class names of Airflow's ``[core] executor`` (a comma-separated list; ``alias:module.Class``
    and dotted paths allowed)."""
    from airflow.sdk import conf

    raw = conf.get("core", "executor", fallback="LocalExecutor") or "LocalExecutor"
    return [item.strip().rsplit(":", 1)[-1].rsplit(".", 1)[-1] for item in raw.split(",") if item.strip()]


def spreading_executors() -> list[str]:
    """The configured executors that may run a task on another host (empty: one host)."""
    return [name for name in configured_executors() if name not in SINGLE_HOST_EXECUTORS]


def declared_shared(env: str, yaml_value: Any, where: str) -> bool:
    """A ``true``/``false`` setting from the environment variable ``env``, else the YAML value; the
    project's one rule for booleans (:func:`meccano.settings.config.parse_bool`), unset or empty meaning false."""
    from meccano.settings.config import parse_bool

    raw = os.environ.get(env)
    if raw is None:
        raw = yaml_value
    text = str(raw if raw is not None else "").strip()
    if not text:
        return False
    try:
        return parse_bool(text)
    except ValueError:
        raise ConfigError(f"{where} / {env}: {raw!r} is not a boolean; use true or false") from None
