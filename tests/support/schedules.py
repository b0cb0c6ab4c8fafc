"""What a factory-built DAG is scheduled on, as the plugin wrote it (a test helper)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from meccano.plugins import factory


def plain_schedule(dag: Any) -> str | timedelta | None:
    """The plugin schedule a factory-built DAG runs on (None: never on a schedule).

    The factory shares one timetable per schedule; the schedule is the key it is cached
    under. A DAG built without a shared timetable keeps its own ``schedule``.
    """
    for (schedule, *_), timetable in factory._TIMETABLES.items():
        if timetable is dag.timetable:
            return schedule
    return dag.schedule
