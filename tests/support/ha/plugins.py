"""Native test plugins for the failover test, written into a temporary plugin folder.

Each task appends one ``start`` and one ``end`` line per execution to
``<plugins dir>/executions.log`` (``O_APPEND`` writes of one short line are atomic), so
the test can count how many times every task instance really ran.
"""

from __future__ import annotations

import json
from pathlib import Path

LOG_NAME = "executions.log"

_CODE = '''"""HA test plugin: records each execution, sleeps {sleep}s per task."""

import os
import time
from pathlib import Path


def _record(context, task, phase):
    ti = context.airflow_context["ti"]
    line = "\\t".join([phase, context.manifest.dag_id, context.run_id, task, str(ti.try_number),
                      str(os.getpid()), repr(time.time())]) + "\\n"
    path = Path(context.manifest.folder).parent / "{log}"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _step(context, task):
    _record(context, task, "start")
    time.sleep({sleep})
    _record(context, task, "end")
    return task
'''


def _plugin(root: Path, name: str, tasks: list[str], sleep: float, schedule: str | None) -> None:
    folder = root / f"{name}:1.0"
    folder.mkdir(parents=True)
    manifest = {
        "plugin": f"{name}:1.0", "engine": "native", "enabled": schedule is not None,
        "schedule": schedule or "@daily", "description": f"HA failover test plugin {name}",
        "type": "worker", "executionContext": "master", "tasks": tasks,
        "retries": 0,
    }
    (folder / "plugin.json").write_text(json.dumps(manifest, indent=2))
    code = _CODE.format(sleep=sleep, log=LOG_NAME)
    code += "".join(f"\n\ndef {t}(context):\n    return _step(context, {t!r})\n" for t in tasks)
    (folder / f"{name}:1.0.py").write_text(code)


def write_test_plugins(root: Path) -> dict[str, list[str]]:
    """Write the plugins; return ``{dag_id: [task_id, ...]}``.

    ``ha_slow_a``/``ha_slow_b``: two chained tasks of several seconds (manual runs);
    ``ha_quick``: one short task (manual runs); ``ha_tick``: every minute (scheduled runs).
    """
    plugins = {
        "ha_slow_a": (["extract", "load"], 4.0, None),
        "ha_slow_b": (["extract", "load"], 4.0, None),
        "ha_quick": (["count"], 0.5, None),
        "ha_tick": (["tick"], 0.5, "*/1 * * * *"),
    }
    for name, (tasks, sleep, schedule) in plugins.items():
        _plugin(root, name, tasks, sleep, schedule)
    return {name: tasks for name, (tasks, _, _) in plugins.items()}


def read_executions(root: Path) -> list[dict[str, str]]:
    """Every recorded line as a dict (phase, dag_id, run_id, task_id, try_number, pid, time)."""
    path = root / LOG_NAME
    if not path.exists():
        return []
    keys = ("phase", "dag_id", "run_id", "task_id", "try_number", "pid", "time")
    return [dict(zip(keys, line.split("\t"), strict=True)) for line in path.read_text().splitlines() if line]
