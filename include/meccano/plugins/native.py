"""The ``native`` engine: imports the plugin's ``.py`` file and calls ``entrypoint(context)`` with a
:class:`~meccano.contract.context.PluginContext`, in the worker's own Python (native plugins are worker code)."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from meccano.contract.context import PluginContext
from meccano.contract.manifest import PluginManifest, runtime_manifest
from meccano.contract.runconf import refuse_undeclared_conf
from meccano.errors import ConfigError, PluginError
from meccano.files.names import safe_component
from meccano.files.private import private_folder
from meccano.reports.store import publish_if_report
from meccano.settings.config import load_settings

log = logging.getLogger(__name__)



def report_output_dir(manifest: PluginManifest, run_id: str, fresh: bool = False) -> Path:
    """The run's scratch folder for report files, on this worker's disk only. ``fresh`` (a task
    starting): emptied first, so what an earlier attempt or task left there is never published."""
    path = (private_folder(Path(tempfile.gettempdir()), "meccano-reports") / safe_component(manifest.name)
            / safe_component(run_id))
    if fresh:
        shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_native_module(manifest: PluginManifest, entry: str = "entrypoint") -> Any:
    module_name = "meccano_plugin_" + "".join(c if c.isalnum() else "_" for c in manifest.plugin)
    spec = importlib.util.spec_from_file_location(module_name, manifest.source)
    if spec is None or spec.loader is None:
        raise PluginError(f"{manifest.plugin}: cannot load {manifest.source}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, entry, None)):
        raise PluginError(f"{manifest.plugin}: {manifest.source.name} must define a function "
                          f"`{entry}(context)`; see docs/plugins.md, 'Native engine'")
    return module


def run_native(plugin_folder: str, entry: str = "entrypoint", last: bool = True, **context: Any) -> Any:
    """PythonOperator callable of the ``native`` engine: ``entry(context)`` of the plugin.

    A plugin declaring ``tasks`` gets one task per function; the report (if any) is
    published after the ``last`` one.
    """
    # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
    from meccano.settings.secrets import mask_known_secrets

    settings = load_settings()
    mask_known_secrets(settings)  # before the plugin's code runs: whatever it logs or raises is masked
    manifest = runtime_manifest(plugin_folder)
    refuse_undeclared_conf(manifest, context)  # before the plugin's code is even imported
    module = load_native_module(manifest, entry)
    report_dir = report_output_dir(manifest, str(context.get("run_id")), fresh=True)
    ctx = PluginContext(manifest, settings, context, report_dir)
    try:
        result = getattr(module, entry)(ctx)
    except ConfigError as exc:  # a refused option or dag_run.conf: a retry would run with the same ones
        # lazy: airflow.sdk.exceptions costs 1096 ms at import (python -X importtime)
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc
    finally:
        ctx.close()
    if last:
        publish_if_report(manifest, ctx.report_dir, settings)
    else:  # the next task may run on another worker: it could never see these files
        left = sorted(p.name for p in ctx.report_dir.iterdir()) if ctx.report_dir.is_dir() else []
        shutil.rmtree(ctx.report_dir, ignore_errors=True)
        if left:
            ctx.log.warning("task %s wrote %s to its report folder; only the last task's report files are "
                            "published (tasks may run on different workers): discarded", entry, ", ".join(left))
    return result


