"""How each engine runs a plugin at task run time.

Script engines (``R``, ``python``, ``nodejs``) run the plugin's file with its
interpreter: no part of a name or path is ever put into the shell command (they reach
the process through environment variables), so a plugin name cannot inject a command.
Their environment is built explicitly (:mod:`meccano.scripts.environment`), their processes are
supervised by :mod:`meccano.scripts.runner` and their output is redacted by
:mod:`meccano.scripts.hook`.

The ``native`` engine imports the plugin's ``.py`` file and calls ``entrypoint(context)``
with a :class:`PluginContext`.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meccano.errors import ConfigError, PluginError
from meccano.files.names import safe_component
from meccano.files.private import private_folder
from meccano.plugins.contract import PluginManifest, load_plugin
from meccano.settings.config import Settings, load_settings

if TYPE_CHECKING:
    from meccano.iotdb.db import Iotdb

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class ScriptEngine:
    interpreter: str
    install_hint: str
    needs: str  # what a plugin of this engine needs, as the demo and the web listing say it ("needs R")
    package: str  # the Debian package that brings the interpreter


SCRIPT_ENGINES: dict[str, ScriptEngine] = {
    "R": ScriptEngine("Rscript", "install R with `apt-get install r-base-core r-cran-dbi r-cran-rmysql` "
                      "(or your distribution's R and RMySQL packages)", "R", "r-base-core"),
    "python": ScriptEngine(sys.executable, "install Python 3", "Python", "python3"),
    "nodejs": ScriptEngine("node", "install Node.js (`apt-get install nodejs`); the original in-process node.js "
                           "plugins also need the runner's npm packages (scripts/install-node-deps.sh)",
                           "Node.js", "nodejs"),
}

# The fixed command every script plugin runs through: names and paths come from the
# environment, quoted by bash itself, never interpolated into the command text.
SCRIPT_COMMAND = 'exec "$MECCANO_PYTHON" "$MECCANO_SCRIPT_RUNNER"'


def missing_interpreter(engine: str) -> ScriptEngine | None:
    """The script engine ``engine`` when its interpreter is not on this host's PATH, else None (the
    native engine runs in Airflow's own Python; the python engine's interpreter is this one).

    The one "can this engine run here" check: the demo leaves such plugins paused and the web listing
    marks them. It answers for the host that asks (a worker without R still fails its R tasks)."""
    spec = SCRIPT_ENGINES.get(engine)
    if spec is None or shutil.which(spec.interpreter):
        return None
    return spec


def interpreter_path(engine: str) -> str:
    spec = SCRIPT_ENGINES[engine]
    found = shutil.which(spec.interpreter)
    if not found:
        raise PluginError(f"the {engine} engine needs `{spec.interpreter}`, which is not on PATH: "
                          f"{spec.install_hint}")
    return found


def report_output_dir(manifest: PluginManifest, run_id: str, fresh: bool = False) -> Path:
    """The run's scratch folder for report files, on this worker's disk only. ``fresh`` (a task
    starting): emptied first, so what an earlier attempt or task left there is never published."""
    path = (private_folder(Path(tempfile.gettempdir()), "meccano-reports") / safe_component(manifest.name)
            / safe_component(run_id))
    if fresh:
        shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


def merged_parameters(manifest: PluginManifest, context: dict[str, Any]) -> dict[str, Any]:
    """The plugin's ``parameters``, overridden by the run's ``dag_run.conf``.

    In a task this is Airflow's ``context["params"]``: the DAG's Params (the plugin's
    parameters) with ``dag_run.conf`` merged over them and validated before the run.
    Without it (a context built by hand) the same merge is done here.
    """
    params = dict(manifest.parameters)
    resolved = context.get("params")
    if resolved:
        params.update(resolved)
        return params
    dag_run = context.get("dag_run")
    conf = getattr(dag_run, "conf", None) or {}
    if isinstance(conf, dict):
        params.update(conf)
    return params


def allowed_conf_keys(manifest: PluginManifest) -> tuple[str, ...]:
    """What a run's ``dag_run.conf`` may set: the plugin's declared parameters (its Airflow Params) and,
    for a plugin with ``optionsFromConfig``, the options of that config.yml section."""
    keys = list(manifest.parameters)
    if manifest.options_from_config:
        from meccano.fleet.options import option_names

        keys += [k for k in option_names(manifest.options_from_config) if k not in keys]
    return tuple(keys)


def undeclared_conf_problem(manifest: PluginManifest, context: dict[str, Any]) -> str | None:
    """Why this run's ``dag_run.conf`` is refused (keys the plugin does not declare), else None.

    Airflow accepts any conf key and hands it to the run as a param; a key no one declared could
    reach a plugin's code or a script's ``MECCANO_PARAMETERS`` and change what it does. Checked when every
    task starts, before the plugin's code or script runs; a retry cannot help, so the task fails."""
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    if not isinstance(conf, dict):
        return f"dag_run.conf of {manifest.plugin} must be a JSON object, not {type(conf).__name__}"
    allowed = allowed_conf_keys(manifest)
    unknown = sorted(str(k) for k in conf if k not in allowed)
    if not unknown:
        return None
    return (f"dag_run.conf {', '.join(unknown)}: not a parameter of {manifest.plugin}; allowed: "
            f"{', '.join(allowed) or 'none (plugin.json declares no parameters)'}; nothing was run")


def refuse_undeclared_conf(manifest: PluginManifest, context: dict[str, Any]) -> None:
    """Fail the task at once (no retry) when :func:`undeclared_conf_problem` finds one."""
    problem = undeclared_conf_problem(manifest, context)
    if problem:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(problem)


@dataclass
class PluginContext:
    """What a native plugin's ``entrypoint(context)`` receives."""

    manifest: PluginManifest
    settings: Settings
    airflow_context: dict[str, Any] = field(repr=False)
    report_dir: Path

    @property
    def folder(self) -> Path:
        return self.manifest.folder

    @property
    def logical_date(self) -> Any:
        return self.airflow_context.get("logical_date")

    @property
    def data_interval_start(self) -> Any:
        return self.airflow_context.get("data_interval_start")

    @property
    def data_interval_end(self) -> Any:
        return self.airflow_context.get("data_interval_end")

    @property
    def run_id(self) -> str:
        return str(self.airflow_context.get("run_id") or "manual")

    @cached_property
    def params(self) -> dict[str, Any]:
        return merged_parameters(self.manifest, self.airflow_context)

    @property
    def log(self) -> logging.Logger:
        return logging.getLogger(f"meccano.plugin.{self.manifest.name}")

    @cached_property
    def iotdb(self) -> Iotdb:
        from meccano.iotdb.db import Iotdb

        return Iotdb.from_settings(self.settings)

    def xcom_pull(self, task_id: str, key: str = "return_value") -> Any:
        """What an earlier task of this run returned (multi-task native plugins)."""
        ti = self.airflow_context.get("ti")
        return ti.xcom_pull(task_ids=task_id, key=key) if ti is not None else None

    def aws_connection(self) -> Any:
        from meccano.settings.connections import aws_connection

        return aws_connection(self.settings)

    def close(self) -> None:
        if "iotdb" in self.__dict__:
            self.__dict__["iotdb"].dispose()


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


def runtime_manifest(folder: str) -> PluginManifest:
    """Re-read the manifest when the task runs; a plugin broken since parsing fails clearly."""
    loaded = load_plugin(Path(folder))
    if loaded.manifest is None:
        raise PluginError("plugin became invalid since the DAG was parsed:\n" +
                          "\n".join(str(p) for p in loaded.problems))
    return loaded.manifest


def run_native(plugin_folder: str, entry: str = "entrypoint", last: bool = True, **context: Any) -> Any:
    """PythonOperator callable of the ``native`` engine: ``entry(context)`` of the plugin.

    A plugin declaring ``tasks`` gets one task per function; the report (if any) is
    published after the ``last`` one.
    """
    from meccano.scripts.environment import mask_known_secrets  # at run time only: the DAG parse never needs it

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


def publish_if_report(manifest: PluginManifest, output_dir: Path, settings: Settings) -> None:
    """Report plugins: hand what they wrote to the report store every web server reads."""
    if manifest.type != "report":
        return
    from meccano.reports.store import publish_outputs

    publish_outputs(manifest, output_dir, settings)
