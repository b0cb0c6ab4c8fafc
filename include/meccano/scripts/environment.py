"""What a script plugin (R, python, nodejs) receives: an explicit environment, never the worker's.

The worker's environment holds Airflow's secrets (``AIRFLOW__API_AUTH__JWT_SECRET`` lets
anyone mint an admin login; ``AIRFLOW_CONN_*`` hold every connection's password). A script
gets only:

* the original ServiceManager's variables: ``MYSQL_HOST/PORT/USER/PASSWORD/DATABASE/CONNECTIONLIMIT``
  (from the IOTDB connection; ``MECCANO_IOTDB_SQLITE`` instead on the demo), ``AWS_REGION``,
  ``AWS_ACCESSKEYID``, ``AWS_SECRETACCESSKEY``, ``AWS_TOPICARN``, ``AWS_SSLENABLED``,
  ``AWS_ENDPOINTURL`` (only when AWS is configured), ``EXPORT_*``, ``FORECAST_DAYS``, ``WARNINGLIMIT``;
* the run's ``MECCANO_*`` values (dates, plugin, folder, run id, parameters, report folder);
* ``PATH``, ``HOME``, ``LANG``, ``LC_ALL``, ``TMPDIR`` (as the worker has them; the operator then points ``HOME``
  and ``TMPDIR`` into the run folder) and ``TZ`` (the ``timezone`` setting).

Nothing named ``AIRFLOW*`` is ever passed. :func:`script_secrets` lists every secret
value the script can see or read (connection passwords and keys, the web console token)
for the output redaction.

Limits of a run (``plugins:`` section of config.yml, or the environment; declared and validated at load
with every setting, :class:`meccano.settings.config.PluginLimits`):

===========================  ==================================  =======  =========================================
YAML key (``plugins:``)      environment variable                default  meaning
===========================  ==================================  =======  =========================================
``defaultTimeoutMinutes``    ``MECCANO_PLUGIN_TIMEOUT_MINUTES``  60       limit of a script without ``timeoutMinutes``
``killGraceSeconds``         ``MECCANO_PLUGIN_KILL_GRACE``       10       SIGTERM -> SIGKILL wait when it is stopped
===========================  ==================================  =======  =========================================
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meccano.settings.config import Settings

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from meccano.contract.manifest import PluginManifest

SCRIPT_RUNNER = str(Path(__file__).with_name("runner.py"))
PASSED_FROM_WORKER = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


# When the plugin sets timeoutMinutes, Airflow's execution_timeout stops the task (its
# on_kill stops the script); the runner's own deadline then only backs it up, this much later.
BACKSTOP_SECONDS = 30.0


@dataclass(frozen=True)
class ScriptLimits:
    timeout_seconds: float
    grace_seconds: float
    airflow_enforced: bool = False  # timeoutMinutes: Airflow's execution_timeout applies too

    @property
    def runner_deadline(self) -> float:
        """The runner's own deadline: the limit, or just after Airflow's when Airflow enforces it."""
        if self.airflow_enforced:
            return self.timeout_seconds + self.grace_seconds + BACKSTOP_SECONDS
        return self.timeout_seconds


def script_limits(manifest: PluginManifest, settings: Settings) -> ScriptLimits:
    """The plugin's ``timeoutMinutes``, else the default timeout; and the kill grace period."""
    limits = settings.plugins
    minutes = manifest.timeout_minutes or limits.default_timeout_minutes
    return ScriptLimits(float(minutes) * 60, limits.kill_grace_seconds, airflow_enforced=bool(manifest.timeout_minutes))


def _flag(value: bool) -> str:
    return "true" if value else "false"


def original_variables(iotdb: Connection, aws: Connection | None, settings: Settings) -> dict[str, str]:
    """The variables the original ServiceManager's plugins read, from the connections in use."""
    if iotdb.conn_type == "sqlite":
        env = {"MECCANO_IOTDB_SQLITE": iotdb.host or ""}
    else:
        env = {"MYSQL_HOST": iotdb.host or "localhost", "MYSQL_PORT": str(iotdb.port or 3306),
               "MYSQL_USER": iotdb.login or "", "MYSQL_PASSWORD": iotdb.password or "",
               "MYSQL_DATABASE": iotdb.schema or "", "MYSQL_CONNECTIONLIMIT": str(settings.mysql.connection_limit)}
    if aws is not None:
        extra = aws.extra_dejson if isinstance(aws.extra_dejson, dict) else {}
        env.update({"AWS_REGION": str(extra.get("region_name") or settings.aws.region),
                    "AWS_ACCESSKEYID": aws.login or "", "AWS_SECRETACCESSKEY": aws.password or "",
                    "AWS_TOPICARN": settings.aws.topic_arn,
                    "AWS_SSLENABLED": _flag(settings.aws.ssl_enabled),
                    "AWS_ENDPOINTURL": str(extra.get("endpoint_url") or settings.aws.endpoint_url)})
    e = settings.export
    env.update({"EXPORT_ENABLED": _flag(e.enabled), "EXPORT_BUCKET": e.bucket,
                "EXPORT_LOCALDIRECTORY": e.local_directory, "EXPORT_REMOTEDIRECTORY": e.remote_directory,
                "EXPORT_PURGE": _flag(e.purge), "EXPORT_DAYS": str(e.days),
                "FORECAST_DAYS": str(settings.forecast_days), "WARNINGLIMIT": str(settings.warninglimit)})
    return env


def _context_dates(context: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for key, var in (("logical_date", "MECCANO_LOGICAL_DATE"), ("data_interval_start", "MECCANO_INTERVAL_START"),
                     ("data_interval_end", "MECCANO_INTERVAL_END")):
        value = context.get(key)
        if value is not None:
            out[var] = value.isoformat()
    return out


@dataclass(frozen=True)
class ScriptRun:
    """Everything one run of a script plugin is given: what the task knows when it starts (the manifest, Airflow's
    context, the settings, the connections) and what it decided (the interpreter, the report folder, the parameters
    after the run's conf, the limits)."""

    manifest: PluginManifest
    context: Mapping[str, Any]
    settings: Settings
    interpreter: str
    report_dir: Path
    parameters: dict[str, Any]
    limits: ScriptLimits
    iotdb: Connection
    aws: Connection | None


def build_script_env(run: ScriptRun, worker_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a script plugin (see the module docstring)."""
    worker_env = os.environ if worker_env is None else worker_env  # the few variables passed on, not settings
    env = {k: worker_env[k] for k in PASSED_FROM_WORKER if worker_env.get(k)}
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("LANG", "C.UTF-8")
    env["TZ"] = run.settings.timezone
    env.update(original_variables(run.iotdb, run.aws, run.settings))
    manifest = run.manifest
    env.update({
        "MECCANO_PYTHON": sys.executable,
        "MECCANO_SCRIPT_RUNNER": SCRIPT_RUNNER,
        "MECCANO_TIMEOUT_SECONDS": f"{run.limits.runner_deadline:g}",
        "MECCANO_KILL_GRACE_SECONDS": f"{run.limits.grace_seconds:g}",
        "MECCANO_INTERPRETER": run.interpreter,
        "MECCANO_PLUGIN_SOURCE": str(manifest.source),
        "MECCANO_PLUGIN_DIR": str(manifest.folder),
        "MECCANO_PLUGIN": manifest.plugin,
        "MECCANO_RUN_ID": str(run.context.get("run_id") or "manual"),
        "MECCANO_REPORT_DIR": str(run.report_dir),
        "MECCANO_PARAMETERS": json.dumps(run.parameters),
        **_context_dates(run.context),
    })
    return env
