"""The plugin listing for the web console: each plugin.json as the original served it,
plus what Airflow knows (DAG, validity, last and next run) and links to docs and reports."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, create_model

from meccano.contract.manifest import ORIGINAL_FIELDS, PluginLoad, PluginType, display_name, invalid_dag_id
from meccano.contract.web_paths import docs_route
from meccano.plugins.discovery import Catalog, discover
from meccano.reports.store import ReportEntry, ReportStore
from meccano.scripts.engines import missing_interpreter
from meccano.web.runs import DagState, dag_states

log = logging.getLogger(__name__)



class LastRun(BaseModel):
    state: str | None = Field(description="Airflow DAG run state: queued, running, success, failed")
    run_id: str | None
    started_at: datetime | None
    ended_at: datetime | None


class Links(BaseModel):
    dag: str = Field(description="The DAG in the Airflow UI")
    docs: str | None = Field(description="The plugin's assets/index.html; null when it has none")
    report: str | None = Field(description="The latest report's chart (PNG); null when none was published")
    report_data: str | None = Field(description="The numbers behind the latest chart (CSV); null when none")
    report_history: str | None = Field(description="JSON list of the kept reports; null for non-report plugins")


class ReportInfo(BaseModel):
    created_at: datetime
    stamp: str
    files: list[str]


if TYPE_CHECKING:
    class _OriginalFields(BaseModel):
        def __getattr__(self, key: str) -> Any: ...  # the fields create_model adds below
else:  # plugin.json's original fields (declared by the contract), as written: any JSON value, null when absent
    _OriginalFields = create_model("OriginalFields", **{
        key: (Any, Field(description=f"plugin.json '{key}' as written (null when absent)")) for key in ORIGINAL_FIELDS})


class PluginRow(_OriginalFields):
    """One plugin folder. The first seven fields are plugin.json's (:data:`ORIGINAL_FIELDS`), unchanged (null when
    absent)."""

    model_config = ConfigDict(populate_by_name=True)

    folder: str = Field(description="Folder name under meccano_plugins/")
    name: str | None
    version: str | None
    dag_id: str
    valid: bool
    errors: list[str]
    shadowed_by: str | None = Field(description="A higher version that runs instead of this one")
    paused: bool | None
    last_run: LastRun | None
    next_run: datetime | None = Field(description="When the scheduler creates the next run, in the fleet's zone "
                                      "(ISO 8601 with its offset); null if paused/none")
    timezone: str = Field("UTC", description="The zone the schedule's cron runs in (timezone / TZ)")
    report: ReportInfo | None
    needs: str | None = Field(None, description="What the plugin's engine needs and this host lacks (\"R\", "
                              "\"Node.js\"): its interpreter is not on PATH, so its runs fail here; null when it runs")
    needs_detail: str | None = Field(None, description="The missing interpreter and the package that brings it")
    links: Links


_ORIGINAL_LIMIT = 2000


def _original(value: Any) -> Any:
    """A plugin.json field as written, unless it is long or nested (invalid plugins): then cut or null."""
    if isinstance(value, str):
        return value if len(value) <= _ORIGINAL_LIMIT else value[:_ORIGINAL_LIMIT] + "...(cut)"
    if isinstance(value, (dict, list)):
        return None
    return value


@dataclass(frozen=True)
class _Where:
    """Where a row's links point (this app, Airflow's UI) and the zone its times are shown in."""

    base: str
    airflow_base: str
    timezone: str = "UTC"


@dataclass(frozen=True)
class _Entry:
    """One plugin folder as the listing shows it."""

    load: PluginLoad
    dag_id: str
    valid: bool
    shadowed_by: str | None = None
    state: DagState | None = None
    report: ReportEntry | None = None


def _safe_row(entry: _Entry, where: _Where) -> PluginRow:
    """:func:`_row`, or a bare row naming the folder when anything about it fails: one folder
    never takes the listing down."""
    try:
        return _row(entry, where)
    except Exception as exc:
        none = dict.fromkeys(ORIGINAL_FIELDS)
        return PluginRow(**none, folder=display_name(entry.load.folder), name=None, version=None,
                         dag_id=entry.dag_id, valid=False,
                         errors=[f"plugin.json: could not be listed: {type(exc).__name__}"],
                         shadowed_by=entry.shadowed_by, paused=None, last_run=None, next_run=None,
                         timezone=where.timezone, report=None,
                         links=Links(dag=f"{where.airflow_base}/dags/{quote(entry.dag_id)}", docs=None, report=None,
                                     report_data=None, report_history=None))


def _needs(engine: str | None) -> tuple[str | None, str | None]:
    """A row's ``needs`` and ``needs_detail``: set when the engine's interpreter is missing on this host."""
    spec = missing_interpreter(engine) if engine is not None else None
    if spec is None:
        return None, None
    return spec.needs, f"{spec.interpreter} not found on PATH; install {spec.package} to run it"


def _row(entry: _Entry, where: _Where) -> PluginRow:
    load, dag_id, shadowed_by, state, report = entry.load, entry.dag_id, entry.shadowed_by, entry.state, entry.report
    base, airflow_base, timezone = where.base, where.airflow_base, where.timezone
    raw = load.raw if isinstance(load.raw, dict) else {}
    manifest = load.manifest
    folder = display_name(load.folder)
    report_name = manifest.name if manifest is not None and manifest.type == PluginType.REPORT else None
    is_report = report_name is not None
    needs, needs_detail = _needs(manifest.engine if manifest is not None else None)
    docs = f"{base}{docs_route(folder)}" if load.has_docs else None
    chart = data = None
    if report is not None and report_name is not None:
        name = quote(report_name)
        chart = f"{base}/reports/{name}/{report.stamp}/{report.chart}" if report.chart else None
        data = f"{base}/reports/{name}/{report.stamp}/data.csv" if "data.csv" in report.files else None
    return PluginRow(
        **{k: _original(raw.get(k)) for k in ORIGINAL_FIELDS},
        folder=folder,
        name=manifest.name if manifest else None,
        version=manifest.version if manifest else None,
        dag_id=dag_id,
        valid=entry.valid,
        errors=[str(p.relative()) for p in load.problems],
        shadowed_by=shadowed_by,
        paused=state.paused if state else None,
        last_run=LastRun(state=state.last_state, run_id=state.last_run_id, started_at=state.last_run_at,
                         ended_at=state.last_end) if state and state.last_run_id else None,
        next_run=state.next_run.astimezone(ZoneInfo(timezone)) if state and state.next_run and not shadowed_by
        else None,
        timezone=timezone,
        report=ReportInfo(created_at=report.created_at, stamp=report.stamp, files=list(report.files))
        if report is not None and is_report else None,
        needs=needs,
        needs_detail=needs_detail,
        links=Links(dag=f"{airflow_base}/dags/{quote(dag_id)}", docs=docs, report=chart, report_data=data,
                    report_history=f"{base}/reports/{quote(report_name)}" if report_name is not None else None),
    )


def build_listing(store: ReportStore, base: str, airflow_base: str, root: Path | None = None,
                  timezone: str = "UTC") -> list[PluginRow]:
    """Every plugin folder: the active ones, then shadowed lower versions, then invalid ones."""
    catalog: Catalog = discover(root)
    where = _Where(base, airflow_base, timezone)
    active_ids = [p.manifest.dag_id for p in catalog.active if p.manifest]
    invalid_ids = {id(p): invalid_dag_id(p.folder) for p in catalog.invalid}
    states = dag_states([*active_ids, *invalid_ids.values()])
    rows = []
    for load in catalog.active:
        m = load.manifest
        if m is None:  # never: an active plugin has its manifest
            continue
        try:
            latest = store.latest(m.name) if m.type == PluginType.REPORT else None
        except Exception as exc:  # an unreadable report never hides the plugin
            log.warning("listing: the latest report of %s could not be read: %s", m.name, type(exc).__name__)
            latest = None
        rows.append(_safe_row(_Entry(load, m.dag_id, True, state=states.get(m.dag_id), report=latest), where))
    for item in catalog.shadowed:
        m = item.load.manifest
        if m is None:  # never: a shadowed plugin has its manifest
            continue
        rows.append(_safe_row(_Entry(item.load, m.dag_id, True, shadowed_by=item.by), where))
    for load in catalog.invalid:
        dag_id = invalid_ids[id(load)]
        rows.append(_safe_row(_Entry(load, dag_id, False, state=states.get(dag_id)), where))
    return rows
