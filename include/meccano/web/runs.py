"""Last and next runs of the plugin DAGs, read from Airflow's metadata database.

The web view runs inside Airflow's API server, so it uses Airflow's own models and
session (the same database the scheduler writes). Two queries for all DAGs at once.
When the database cannot be read, the listing still answers, without run data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

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
        return _query(dag_ids)
    except Exception as exc:
        log.warning("cannot read DAG runs from the metadata database: %s", type(exc).__name__)
        return {}


def _query(dag_ids: list[str]) -> dict[str, DagState]:
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    out: dict[str, DagState] = {}
    with create_session() as session:
        models = {m.dag_id: m for m in session.scalars(select(DagModel).where(DagModel.dag_id.in_(dag_ids)))}
        latest = select(func.max(DagRun.id)).where(DagRun.dag_id.in_(dag_ids)).group_by(DagRun.dag_id)
        runs = {r.dag_id: r for r in session.scalars(select(DagRun).where(DagRun.id.in_(latest)))}
        for dag_id in dag_ids:
            model, run = models.get(dag_id), runs.get(dag_id)
            paused = bool(model.is_paused) if model is not None else None
            out[dag_id] = DagState(
                paused=paused,
                next_run=model.next_dagrun_create_after if model is not None and not paused else None,
                last_state=str(run.state) if run is not None and run.state is not None else None,
                last_run_id=run.run_id if run is not None else None,
                last_run_at=(run.start_date or run.queued_at or run.logical_date or run.run_after)
                if run is not None else None,
                last_end=run.end_date if run is not None else None,
            )
    return out
