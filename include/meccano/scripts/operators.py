"""The operator of the script engines: a BashOperator whose command text is fixed and
whose environment is built when the task runs (never at parse time: it holds the IOTDB
credentials from the Airflow connection).

Hardened against hostile or broken scripts: the environment is explicit (``append_env``
off, nothing of Airflow's; :mod:`meccano.scripts.environment`), every secret is removed from the
output (:mod:`meccano.scripts.hook`), no process survives the task
(:mod:`meccano.scripts.runner`), every non-zero exit is a failure (no exit code skips), and the
script runs as another, unprivileged OS user (``plugins.runAs``) in a run folder of its own
(:func:`meccano.scripts.modes.run_folder`): it cannot read the worker's or any other process's
environment and memory, nor write the worker's files. ``plugins.isolation`` (:mod:`meccano.scripts.isolation`)
chooses how: ``user`` (that), ``pod`` (a Kubernetes pod of its own, :mod:`meccano.scripts.pod`) or ``none`` (the
worker's own user, the operator's explicit choice); a worker that cannot do what is chosen fails the task at once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk.exceptions import AirflowException

from meccano.contract.manifest import Engine
from meccano.errors import ScriptIsolationUnavailable
from meccano.scripts.engines import SCRIPT_COMMAND
from meccano.scripts.modes import (
    SQLITE_VARIABLE,
    RunFolder,
    remove_workdir,
    run_folder,
    share_sqlite_iotdb,
    sqlite_problem,
)
from meccano.settings.config import IsolationMode

if TYPE_CHECKING:
    from meccano.scripts.environment import ScriptLimits, ScriptRun
    from meccano.settings.config import Settings


class PluginScriptOperator(BashOperator):
    """Runs an R, python or nodejs plugin file with its interpreter."""

    template_fields = ()  # nothing of a plugin is ever rendered by Jinja
    _run_folder: RunFolder | None = None
    _plugin_folder: str | None = None
    _secrets: Sequence[str] = ()  # set by get_env()
    _grace = 10.0
    _as_worker = False  # plugins.isolation none (set by get_env())
    _pod_job: Any = None  # plugins.isolation pod: the meccano.scripts.pod.PodJob (set by get_env())
    _pod_context: Any = None

    # No __init__ of its own: every level of __init__ is one more pass of Airflow's apply_defaults per task,
    # paid at each parse (bench/README.md, "Cheaper import and discovery, and a bound"). Build it with for_plugin().
    @classmethod
    def for_plugin(cls, plugin_folder: str, **kwargs: Any) -> PluginScriptOperator:
        """The task that runs the script of the plugin in ``plugin_folder``."""
        return cls(bash_command=SCRIPT_COMMAND, cwd=plugin_folder, append_env=False, skip_on_exit_code=None,
                   **kwargs)

    @property
    def plugin_folder(self) -> str:
        """The plugin's own folder: the working folder the task was built with (a run moves ``cwd`` to its
        run folder and back)."""
        return self._plugin_folder or str(self.cwd)

    def get_env(self, context: Any) -> dict[str, str]:
        """The script's whole environment; BashOperator's (the worker's + AIRFLOW_CTX_*) is not used. Each step
        may refuse the run before anything of the script starts."""
        # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
        from meccano.scripts.environment import build_script_env

        self._load_plugin(context)
        script = self._script_run(context)
        env = build_script_env(script)
        self._guard_secrets(script)
        self._refuse_what_cannot_run_here(env)
        self._enter_run_folder(env)
        self._isolate(env, self._run_folder_or_fail(), script.limits, context)
        self._started = time.time()
        return env

    def _load_plugin(self, context: Any) -> None:
        """The manifest as it is now, the run's conf checked against it, the settings, the worker's isolation."""
        # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
        from meccano.contract.manifest import runtime_manifest

        # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
        from meccano.contract.runconf import refuse_undeclared_conf

        # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
        from meccano.settings.config import load_settings

        self._manifest = runtime_manifest(self.plugin_folder)
        refuse_undeclared_conf(self._manifest, dict(context))  # before any connection is read or the script starts
        self._settings = load_settings()
        check_plugin_user(self._settings)

    def _script_run(self, context: Any) -> ScriptRun:
        """What this run is given: connections, limits, parameters, and a fresh run folder for its files."""
        # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
        from meccano.contract.runconf import merged_parameters

        # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
        from meccano.scripts.engines import interpreter_path

        # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
        from meccano.scripts.environment import ScriptRun, script_limits

        # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
        from meccano.settings.connections import aws_if_configured, iotdb_connection

        manifest, settings, ctx = self._manifest, self._settings, dict(context)
        limits = script_limits(manifest, settings)
        self._grace = limits.grace_seconds
        self.log.info("Plugin %s: time limit %g minutes, kill grace %g s", manifest.plugin,
                      limits.timeout_seconds / 60, limits.grace_seconds)
        self._run_folder = run = run_folder(Path(self.plugin_folder))
        return ScriptRun(manifest, ctx, settings, interpreter_path(manifest.engine), run.report,
                         merged_parameters(manifest, ctx), limits, iotdb_connection(settings),
                         aws_if_configured(settings))

    def _guard_secrets(self, script: ScriptRun) -> None:
        """Every secret the script is given: masked in the task's own log, removed from the script's output."""
        # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
        from meccano.secrets.redaction import mask_in_airflow, usable_secrets

        # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
        from meccano.settings.secrets import script_secrets

        secrets = script_secrets(script.settings, script.iotdb, script.aws)
        mask_in_airflow(secrets)  # the task's own log lines and tracebacks (the script's output: StreamRedactor)
        self._secrets, short = usable_secrets(secrets)
        if short:
            self.log.warning("%d secret value(s) given to the plugin are shorter than 4 characters and are NOT "
                             "redacted from its output; use longer passwords and keys", len(short))

    def _refuse_what_cannot_run_here(self, env: dict[str, str]) -> None:
        """An original MySQL-only script on the embedded SQLite IOTDB fails at once (a retry cannot help); the
        SQLite IOTDB is opened to the plugin user; an original node.js plugin gets its runner."""
        manifest, settings = self._manifest, self._settings
        if env.get(SQLITE_VARIABLE) and manifest.engine in (Engine.R, Engine.PYTHON):
            problem = sqlite_problem(manifest.plugin, manifest.engine, manifest.source)
            if problem:
                # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(problem)
        if env.get(SQLITE_VARIABLE) and settings.plugins.isolation == IsolationMode.USER:
            share_sqlite_iotdb(Path(env[SQLITE_VARIABLE]), settings.plugins.run_as)
        if manifest.engine == Engine.NODEJS:
            _original_node_plugin(manifest.source, env)

    def _run_folder_or_fail(self) -> RunFolder:
        assert self._run_folder is not None  # made by _script_run
        return self._run_folder

    def _enter_run_folder(self, env: dict[str, str]) -> None:
        """The script works in the run folder's copy of its plugin folder (``assets/output.png`` still works), and
        nowhere else of the worker's: ``HOME`` and ``TMPDIR`` are in the run folder too."""
        run = self._run_folder_or_fail()
        self.cwd = str(run.workdir)
        env.update({"MECCANO_PLUGIN_SOURCE": str(run.workdir / self._manifest.source.name),
                    "MECCANO_PLUGIN_DIR": str(run.workdir), "HOME": str(run.home), "TMPDIR": str(run.tmp)})

    def _isolate(self, env: dict[str, str], run: RunFolder, limits: ScriptLimits, context: Any) -> None:
        """What ``plugins.isolation`` adds: the plugin user and the run folder the hook hands it (user), the pod
        job (pod), or a plain warning that the script runs as the worker (none)."""
        plugins = self._settings.plugins
        self._as_worker, self._pod_job = plugins.isolation == IsolationMode.NONE, None
        if plugins.isolation == IsolationMode.USER:
            env.update({"MECCANO_RUN_AS": plugins.run_as, "MECCANO_RUN_DIR": str(run.root)})
        elif plugins.isolation == IsolationMode.POD:
            # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
            from meccano.scripts.pod import PodJob

            self._pod_context = context
            self._pod_job = PodJob(
                plugin=self._manifest.plugin, plugin_folder=self.plugin_folder, source_name=self._manifest.source.name,
                env=dict(env), timeout_seconds=limits.runner_deadline, grace_seconds=limits.grace_seconds,
                image=plugins.pod_image, namespace=plugins.pod_namespace, secret_name=plugins.pod_secret,
                template_file=plugins.pod_template_file, run_as=plugins.run_as)
        else:
            # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
            from meccano.scripts.isolation import isolation_notice

            self.log.warning("%s", isolation_notice(self._settings))

    @cached_property
    def subprocess_hook(self) -> Any:
        if self._pod_job is not None:
            # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
            from meccano.scripts.pod import PodScriptHook

            return PodScriptHook(self._pod_job, self._pod_context, self.task_id)
        # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
        from meccano.scripts.hook import ScriptProcessHook

        return ScriptProcessHook(self._secrets, self._grace, as_worker=self._as_worker)

    def execute(self, context: Any) -> Any:
        self._plugin_folder = self.plugin_folder  # before get_env() moves cwd to the run folder
        self._run_folder = None
        try:
            return self._run(context)
        except AirflowException as exc:
            tail = self.subprocess_hook.tail_text()
            if tail:  # the script's last lines (redacted by the hook) name what went wrong
                raise AirflowException(f"{exc}\nLast lines of the plugin's output:\n{tail}") from None
            raise
        finally:
            remove_workdir(self._run_folder.root if self._run_folder else None)
            self.cwd = self.plugin_folder

    def _run(self, context: Any) -> Any:
        result = super().execute(context)
        # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
        from meccano.reports.store import publish_if_report

        assert self._run_folder is not None
        if self._manifest.type == "report":
            _pick_up_legacy_chart(self._run_folder, self._started)
        publish_if_report(self._manifest, self._run_folder.report, self._settings)
        return result


LEGACY_CHART_MAX_BYTES = 20 * 1024 * 1024


def _pick_up_legacy_chart(run: RunFolder, started: float) -> None:
    """The original's report plugins wrote ``assets/output.png`` into their own folder: copy it into the report
    folder when it is fresh and the script wrote no ``output.png`` there itself. Every level beneath the run folder
    (the plugin folder's copy, ``assets``, the file, the report folder) is opened without following a link and the
    chart is written through the report folder's descriptor: the script (another OS user) may have replaced any of
    them by a symlink to a place only the worker may read or write."""
    # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
    from meccano.files.guard import open_folder_beneath, read_regular_at, write_new_at

    try:
        with open_folder_beneath(run.root, [run.workdir.name, "assets"]) as assets:
            data, info = read_regular_at(assets, "output.png", LEGACY_CHART_MAX_BYTES)
        if info.st_mtime < started - 1 or not data or len(data) > LEGACY_CHART_MAX_BYTES:
            return
        with open_folder_beneath(run.root, [run.report.name]) as report:
            write_new_at(report, "output.png", data)
    except FileNotFoundError:
        return  # no fresh legacy chart, or a link in the way: publishing says what is missing


def _original_node_plugin(source: Path, env: dict[str, str]) -> None:
    """An original in-process node.js plugin runs through the shipped runner (``MECCANO_NODE_RUNNER``)."""
    # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
    from meccano.scripts.original_node import NODE_RUNNER, RUNNER_VARIABLE, is_in_process, runner_problem

    if not is_in_process(source):
        return
    problem = runner_problem()
    if problem:
        # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(problem)  # a retry cannot help
    env[RUNNER_VARIABLE] = str(NODE_RUNNER)


def check_plugin_user(settings: Settings) -> None:
    """Raise before anything starts when this worker cannot run scripts as ``plugins.isolation`` asks: a missing
    plugin user (:class:`~meccano.errors.PluginUserMissing`), or a worker that cannot switch to it / a pod isolation
    that is not set up (fails the task at once, without retries: a retry on the same worker cannot help)."""
    # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
    from airflow.sdk.exceptions import AirflowFailException

    # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
    from meccano.scripts.isolation import check_isolation

    try:
        check_isolation(settings)
    except ScriptIsolationUnavailable as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from None
