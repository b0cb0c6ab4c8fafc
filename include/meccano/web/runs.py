"""Last and next runs of the plugin DAGs, for the listing.

Read from Airflow's metadata database through :mod:`meccano.web.airflow_internal` (the
one module that touches Airflow's internals). When the database cannot be read, the
listing still answers, without run data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DagState:
    paused: bool | None = None
    next_run: datetime | None = None  # when the scheduler will create the next run
    last_state: str | None = None
    last_run_id: str | None = None
    last_run_at: datetime | None = None  # start (or queue/logical) time of the latest run
    last_end: datetime | None = None


def dag_states(dag_ids: list[str]) -> dict[str, DagState]:
    if not dag_ids:
        return {}
    try:
        # lazy: meccano.web.airflow_internal costs 212 ms at import (python -X importtime)
        from meccano.web.airflow_internal import latest_runs

        models, runs = latest_runs(dag_ids)
    except Exception as exc:
        log.warning("cannot read DAG runs from the metadata database: %s", type(exc).__name__)
        return {}
    return {dag_id: _state(models.get(dag_id), runs.get(dag_id)) for dag_id in dag_ids}


def _state(model: dict[str, Any] | None, run: dict[str, Any] | None) -> DagState:
    paused = bool(model["is_paused"]) if model is not None else None
    return DagState(
        paused=paused,
        next_run=model["next_dagrun_create_after"] if model is not None and not paused else None,
        last_state=str(run["state"]) if run is not None and run["state"] is not None else None,
        last_run_id=run["run_id"] if run is not None else None,
        last_run_at=(run["start_date"] or run["queued_at"] or run["logical_date"] or run["run_after"])
        if run is not None else None,
        last_end=run["end_date"] if run is not None else None,
    )
