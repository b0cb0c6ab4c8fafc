"""What a run may change of a plugin: its declared ``parameters``, merged with ``dag_run.conf``; any other key of
the run's conf is refused before the plugin's code runs."""

from __future__ import annotations

from typing import Any

from meccano.contract.manifest import PluginManifest


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
        # lazy: meccano.fleet.options costs 28 ms at import (python -X importtime)
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
        # lazy: airflow.sdk.exceptions costs 1139 ms at import (python -X importtime)
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(problem)
