"""Manifest -> DAG. One DAG per active plugin; an engine table picks the operator.

Parsing stays cheap: no database or network access, no plugin code imported; when a
task runs (``get_parsing_context().dag_id`` is set) only that plugin's folders are read.
A broken plugin never hides the others: each becomes a DAG of its own, tagged
``invalid``, that fails at once with its validation errors.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Asset, Param, conf

from meccano.contract.manifest import (
    CONFIG_ERROR_DAG,
    DOCS_PAGE,
    INVALID_PREFIX,
    PluginLoad,
    PluginManifest,
    display_name,
    invalid_dag_id,
)
from meccano.contract.web_paths import WEB_PREFIX, docs_route
from meccano.errors import ConfigError
from meccano.plugins.discovery import Catalog, discover
from meccano.scripts.engines import SCRIPT_ENGINES, missing_interpreter
from meccano.scripts.operators import PluginScriptOperator
from meccano.settings.config import Settings, load_settings
from meccano.settings.pool import IOTDB_POOL

START_DATE = datetime(2024, 1, 1, tzinfo=UTC)
DEFAULT_RETRIES = 2
DEFAULT_RETRY_DELAY = timedelta(minutes=2)
_MAX_ERRORS = 100


def schedule_for(manifest: PluginManifest, settings: Settings) -> str | timedelta | None:
    """The plugin's schedule, or None when it must never run on a schedule."""
    if not manifest.enabled:
        return None
    if manifest.enabled_from_config == "export.enabled" and not settings.export.enabled:
        return None
    if manifest.schedule_from_config == "warninglimit":
        return minutes_schedule(settings.warninglimit)
    return manifest.schedule


def minutes_schedule(minutes: int) -> str | timedelta:
    """Every ``minutes`` as a cron when it divides the hour or the day, else a timedelta."""
    if minutes < 60 and 60 % minutes == 0:
        return f"*/{minutes} * * * *"
    if minutes % 60 == 0 and 24 % (minutes // 60) == 0:
        return "0 * * * *" if minutes == 60 else f"0 */{minutes // 60} * * *"
    return timedelta(minutes=minutes)


_TIMETABLES: dict[tuple[Any, bool, str], Any] = {}


def timetable_for(schedule: str | timedelta | None, cron_data_intervals: bool = False,
                  timezone: str = "UTC") -> Any:
    """The shared, validated timetable of ``schedule`` (``None``, ``@once`` and ``@continuous``
    are given to the DAG as they are: Airflow builds those itself, at no cost).

    Raises Airflow's ``AirflowTimetableInvalid`` when Airflow rejects the schedule (the
    plugin then gets an error DAG); a rejected schedule is not cached.
    """
    if schedule is None or schedule in ("@once", "@continuous"):
        return schedule
    key = (schedule, cron_data_intervals, timezone)
    if key not in _TIMETABLES:
        timetable = _build_timetable(schedule, cron_data_intervals, timezone)
        timetable.validate()  # Airflow's own verdict, once per distinct schedule
        _TIMETABLES[key] = timetable
    return _TIMETABLES[key]


def _build_timetable(schedule: str | timedelta, cron_data_intervals: bool, timezone: str = "UTC") -> Any:
    """One immutable timetable per distinct schedule, shared by every DAG that uses it.

    What Airflow's DAG would build from the plain value (``scheduler.create_cron_data_intervals``
    read once per parse instead of once per DAG): at 1,000 plugins this is a tenth of the
    parse time. Only the timetables ``airflow.sdk`` exports are used.
    """
    # lazy: airflow.sdk's timetables cost 11 ms at import (timed after the factory's import), not paid by the CLI
    from airflow.sdk import (
        CronDataIntervalTimetable,
        CronTriggerTimetable,
        DeltaDataIntervalTimetable,
        DeltaTriggerTimetable,
    )

    if isinstance(schedule, timedelta):
        return DeltaDataIntervalTimetable(schedule) if cron_data_intervals else DeltaTriggerTimetable(schedule)
    if cron_data_intervals:
        return CronDataIntervalTimetable(schedule, timezone)
    # The cron runs in the fleet's zone (timezone / TZ), daylight-saving changes included.
    return CronTriggerTimetable(schedule, timezone=timezone)


def _cron_data_intervals() -> bool:
    return bool(conf.getboolean("scheduler", "create_cron_data_intervals", fallback=False))


def _docs(manifest: PluginManifest, folder: str, shadowed: list[str], docs_url: str | None) -> str:
    """The DAG's docs: what the plugin is, and a link to its documentation page.

    The page is linked, not pasted: Airflow 3's UI renders ``doc_md`` with raw HTML skipped, so an HTML page
    pasted here showed as little more than its loose text, while the Meccano view serves it whole (its own
    assets included). The parse reads nothing of it (bench/README.md, issue 37).
    """
    lines = [f"## {manifest.plugin}", "", html.escape(manifest.description), "",
             f"* engine: `{manifest.engine}` · type: `{manifest.type}` · "
             f"executionContext: `{manifest.execution_context}`",
             f"* folder: `{folder}`"]
    if shadowed:
        lines.append(f"* shadows (lower versions, not run): {', '.join(shadowed)}")
    if docs_url:
        lines.append(f"* documentation: [{DOCS_PAGE}]({docs_url}) (served by the Meccano view)")
    return "\n".join(lines)


def web_root() -> str:
    """The Meccano view's path as the browser sees it: below the path of Airflow's ``[api] base_url``."""
    try:  # an unreadable setting costs the link its base path, never the DAGs
        base = str(conf.get("api", "base_url", fallback="") or "")
        path = urlsplit(base).path.rstrip("/")
    except Exception:
        path = ""
    return quote(path, safe="/%") + WEB_PREFIX  # a Markdown link's target: no space


def _outlets(manifest: PluginManifest, settings: Settings) -> list[Asset]:
    if not manifest.outlets:
        return []
    # lazy: meccano.export.assets costs 7 ms at import (python -X importtime)
    from meccano.export.assets import outlet_uris  # templates: {export_target}/{table} (one Asset per table)

    return [Asset(uri) for template in manifest.outlets for uri in outlet_uris(template, settings)]


def plugin_params(manifest: PluginManifest) -> dict[str, Any]:
    """The plugin's ``parameters`` as Airflow Params: shown in the trigger form, validated before a run.

    A parameter's JSON schema is the one in ``parameterSchemas``, else the type of its
    default. Airflow merges a run's ``dag_run.conf`` over these and validates the result
    before the first task starts; tasks read it as ``context["params"]``.
    """
    if not manifest.parameters:
        return {}
    return {key: Param(value, **manifest.param_schema(key)) for key, value in manifest.parameters.items()}


def build_plugin_dag(manifest: PluginManifest, settings: Settings, shadowed: list[str] | None = None,
                     cron_data_intervals: bool = False, docs_url: str | None = None) -> DAG:
    """The plugin's DAG; ``docs_url`` links its documentation page from the DAG's docs (None: it has none)."""
    folder = str(manifest.folder)
    schedule = schedule_for(manifest, settings)
    # Given to each task directly rather than as the DAG's default_args, which Airflow
    # deep-copies into every operator (measurable at 1,000 plugins).
    task_args: dict[str, Any] = {
        "owner": manifest.owner,
        "retries": DEFAULT_RETRIES if manifest.retries is None else manifest.retries,
        "retry_delay": timedelta(minutes=manifest.retry_delay_minutes) if manifest.retry_delay_minutes
        else DEFAULT_RETRY_DELAY,
        "retry_exponential_backoff": True,
    }
    if manifest.timeout_minutes:
        task_args["execution_timeout"] = timedelta(minutes=manifest.timeout_minutes)
    task_args["pool"] = IOTDB_POOL  # MYSQL_CONNECTIONLIMIT: IOTDB tasks at once, cluster-wide
    on_failure = None
    if manifest.notify_on_failure:
        # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
        from meccano.plugins.failure_notices import callbacks

        task_args["on_failure_callback"], on_failure = callbacks()
    dag = DAG(
        dag_id=manifest.dag_id,
        description=manifest.description[:200],
        schedule=timetable_for(schedule, cron_data_intervals, settings.timezone),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        # Explicit values instead of config-backed defaults: cheaper to parse at 1,000 plugins.
        max_active_tasks=16,
        max_consecutive_failed_dag_runs=0,
        disable_bundle_versioning=False,
        is_paused_upon_creation=schedule is None or (
            settings.plugins.pause_without_interpreter and missing_interpreter(manifest.engine) is not None),
        tags=["meccano", f"type:{manifest.type}", f"engine:{manifest.engine}", f"version:{manifest.version}",
              *(["disabled"] if schedule is None else [])],
        doc_md=_docs(manifest, folder, shadowed or [], docs_url),
        on_failure_callback=on_failure,
        params=plugin_params(manifest),
        render_template_as_native_obj=False,
    )
    # The DAG is given to each task rather than entered as a context manager: the module
    # exports every DAG itself (globals), so Airflow's auto-registration has nothing to add.
    task_args["dag"] = dag
    if manifest.engine in SCRIPT_ENGINES:
        PluginScriptOperator.for_plugin(folder, task_id="run", outlets=_outlets(manifest, settings), **task_args)
    else:
        entries = manifest.tasks or ("entrypoint",)
        previous = None
        for index, entry in enumerate(entries):
            last = index == len(entries) - 1
            op = PythonOperator(
                task_id="run" if entries == ("entrypoint",) else entry,
                python_callable=run_native,
                op_kwargs={"plugin_folder": folder, "entry": entry, "last": last},
                outlets=_outlets(manifest, settings) if last else [],
                **task_args,
            )
            if previous is not None:
                previous >> op
            previous = op
    return dag


def run_native(plugin_folder: str, entry: str = "entrypoint", last: bool = True, **context: Any) -> Any:
    """The native engine's task callable (:func:`meccano.plugins.native.run_native`), imported when a task runs."""
    # lazy: meccano.plugins.native costs 4.5 ms at import (the report store, the plugin context), paid by no parse
    from meccano.plugins import native

    return native.run_native(plugin_folder, entry, last, **context)


def _fail(errors: str) -> None:
    # lazy: off the DAG parse (runs only in a failing task; bench_parse: the factory's lazy imports at the top, +8%)
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(errors)


def build_error_dag(dag_id: str, title: str, errors: list[str], tags: list[str]) -> DAG:
    """A DAG that makes a problem visible: it runs once, fails at once, and shows why."""
    if len(errors) > _MAX_ERRORS:
        errors = [*errors[:_MAX_ERRORS], f"... and {len(errors) - _MAX_ERRORS} more problems"]
    text = "\n".join(errors)
    dag = DAG(
        dag_id=dag_id,
        description=title[:200],
        schedule="@once",
        start_date=START_DATE,
        catchup=False,
        is_paused_upon_creation=False,
        tags=["meccano", *tags],
        doc_md=f"## {html.escape(title)}\n\n" + "\n".join(f"* {html.escape(e)}" for e in errors),
    )
    with dag:
        PythonOperator(task_id="report_errors", python_callable=_fail, op_args=[text], retries=0)
    return dag


def build_invalid_dag(load: PluginLoad) -> DAG:
    return build_error_dag(invalid_dag_id(load.folder), f"Invalid plugin {display_name(load.folder)}",
                           [str(p) for p in load.problems], ["invalid"])


def build_dags(root: Path | None = None, only_dag_id: str | None = None) -> dict[str, DAG]:
    """Every DAG of the plugin folder; with ``only_dag_id``, just that one (task run)."""
    dags: dict[str, DAG] = {}
    try:
        settings = load_settings()
    except Exception as exc:  # ConfigError names the keys; anything else must not take the plugins down either
        settings = Settings()
        message = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__} while loading the settings"
        dags[CONFIG_ERROR_DAG] = build_error_dag(CONFIG_ERROR_DAG, "Invalid Meccano configuration",
                                                 message.splitlines(), ["invalid", "config"])
    name = None
    if only_dag_id and not only_dag_id.startswith(INVALID_PREFIX) and only_dag_id != CONFIG_ERROR_DAG:
        name = only_dag_id
    catalog: Catalog = discover(root, name=name)
    intervals = _cron_data_intervals()
    docs_root = web_root()
    shadows: dict[str, list[str]] = {}
    for item in catalog.shadowed:
        shadows.setdefault(item.by, []).append(item.load.folder.name)
    # Each plugin's load is let go once its DAG is built, so the next DAGs reuse its memory instead of new pages:
    # at 1,000 plugins 700 fewer page faults and 3 MB less peak for the parse (bench/README.md, issue 37).
    pending, catalog.active = catalog.active[::-1], []
    while pending:
        load = pending.pop()
        assert load.manifest is not None
        try:
            docs_url = f"{docs_root}{docs_route(load.folder.name)}" if load.has_docs else None
            dags[load.manifest.dag_id] = build_plugin_dag(load.manifest, settings, shadows.get(load.manifest.plugin),
                                                          intervals, docs_url)
        except Exception as exc:
            dag = build_error_dag(invalid_dag_id(load.folder), f"Plugin {load.folder.name} failed to build",
                                  [f"{load.folder.name}: {type(exc).__name__}: {exc}"], ["invalid"])
            dags[dag.dag_id] = dag
    for load in catalog.invalid:
        try:
            dag = build_invalid_dag(load)
        except Exception as exc:  # an error DAG that cannot show its problems still shows the folder
            dag = build_error_dag(invalid_dag_id(load.folder), f"Invalid plugin {display_name(load.folder)}",
                                  [f"{display_name(load.folder)}: invalid; its problems could not be shown "
                                   f"({type(exc).__name__})"], ["invalid"])
        dags[dag.dag_id] = dag
    return dags
