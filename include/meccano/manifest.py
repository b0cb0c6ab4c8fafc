"""The plugin contract in one place: ``plugin.json``, parsed and validated.

Every problem of a plugin is collected at once, each naming the plugin folder and the
field, so a plugin author fixes them all in one round.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meccano.cron import cron_problem

ENGINES: dict[str, str] = {"R": ".R", "python": ".py", "native": ".py", "nodejs": ".js"}
TYPES = ("report", "worker", "stream")
CONTEXTS = ("master", "both")

REQUIRED: dict[str, type | tuple[type, ...]] = {
    "plugin": str,
    "engine": str,
    "enabled": bool,
    "schedule": str,
    "description": str,
    "type": str,
    "executionContext": str,
}
# Documented optional fields (README, "The plugin contract").
OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "retries": int,
    "retryDelayMinutes": (int, float),
    "timeoutMinutes": (int, float),
    "parameters": dict,
    "scheduleFromConfig": str,
    "owner": str,
    "enabledFromConfig": str,
    "tasks": list,
    "outlets": list,
    "notifyOnFailure": bool,
}
ENABLED_CONFIG_KEYS = ("export.enabled",)
_TASK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
SCHEDULE_CONFIG_KEYS = ("warninglimit",)

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,99}$")
_VERSION = re.compile(r"^[0-9]+(?:\.[0-9]+){0,3}$")
_UNSAFE = ("/", "\\", "..", " ", ";", "'", '"', "`", "$", "|", "&", "<", ">", "*", "?", "{", "}", "\n", "\t")
_TYPE_NAMES = {str: "a string", bool: "true or false", int: "a whole number", dict: "an object",
               float: "a number", list: "a list"}
_FIELD_TYPES = (*REQUIRED.items(), *OPTIONAL.items())
_ALLOWED_FIELDS = ", ".join([*REQUIRED, *OPTIONAL])


@dataclass(frozen=True)
class PluginProblem:
    folder: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.folder}: {self.field}: {self.message}"


@dataclass(frozen=True)
class PluginManifest:
    folder: Path
    plugin: str
    name: str
    version: str
    engine: str
    enabled: bool
    schedule: str
    description: str
    type: str
    execution_context: str
    raw: dict[str, Any]
    retries: int | None = None
    retry_delay_minutes: float | None = None
    timeout_minutes: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    schedule_from_config: str | None = None
    owner: str = "meccano"
    enabled_from_config: str | None = None
    tasks: tuple[str, ...] = ()
    outlets: tuple[str, ...] = ()
    notify_on_failure: bool = True  # tell the administrators when a run fails (failure_notify.py)

    @property
    def dag_id(self) -> str:
        return self.name

    @property
    def source(self) -> Path:
        return self.folder / f"{self.plugin}{ENGINES[self.engine]}"

    @property
    def docs(self) -> Path:
        return self.folder / "assets" / "index.html"

    @property
    def version_key(self) -> tuple[int, ...]:
        return version_key(self.version)


@dataclass(frozen=True)
class PluginLoad:
    """The outcome of reading one plugin folder: a manifest, or the problems."""

    folder: Path
    manifest: PluginManifest | None
    problems: tuple[PluginProblem, ...] = ()
    raw: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.manifest is not None and not self.problems


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")) if _VERSION.match(version) else (-1,)


def split_plugin_id(plugin_id: str) -> tuple[str, str] | None:
    """``'deviceAvgTime:1.0'`` -> ``('deviceAvgTime', '1.0')``; None when malformed."""
    name, sep, version = plugin_id.partition(":")
    if sep and _NAME.match(name) and _VERSION.match(version):
        return name, version
    return None


def unsafe_characters(text: str) -> list[str]:
    return [c for c in _UNSAFE if c in text]


def _type_name(expected: type | tuple[type, ...]) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)


def _check_type(value: Any, expected: type | tuple[type, ...]) -> bool:
    if isinstance(value, bool) and expected is not bool and expected != (bool,):
        return False  # JSON true is not a number
    return isinstance(value, expected)


def _name_problems(label: str, text: str) -> list[str]:
    bad = unsafe_characters(text)
    out = []
    if bad:
        shown = " ".join(repr(c) for c in bad)
        out.append(f"{label} {text!r} contains {shown}, which could escape the plugin folder or a shell; "
                   "use letters, digits, '_' or '-', then ':' and a numeric version like 1.0")
    elif split_plugin_id(text) is None:
        out.append(f"{label} {text!r} is not of the form <name>:<version> "
                   "(name: a letter then letters, digits, '_' or '-'; version: numbers like 1.0)")
    return out


def load_plugin(folder: Path) -> PluginLoad:
    """Read and validate ``folder/plugin.json``; never raises for bad content.

    File checks use ``os`` on the folder's string path rather than ``pathlib``: the DAG
    factory runs this for every plugin at each parse, and at 1,000 plugins pathlib's
    object building was a measurable share of the parse.
    """
    label = folder.name
    base = os.fspath(folder)
    problems: list[PluginProblem] = []

    def problem(field_name: str, message: str) -> None:
        problems.append(PluginProblem(label, field_name, message))

    for message in _name_problems("folder name", label):
        problem("folder", message)

    try:
        with open(os.path.join(base, "plugin.json"), encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        problem("plugin.json", "missing; every plugin folder needs a plugin.json (see README)")
        return PluginLoad(folder, None, tuple(problems))
    except (OSError, UnicodeDecodeError) as exc:
        problem("plugin.json", f"cannot be read: {exc}")
        return PluginLoad(folder, None, tuple(problems))
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        problem("plugin.json", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
        return PluginLoad(folder, None, tuple(problems))
    if not isinstance(raw, dict):
        problem("plugin.json", f"must hold a JSON object {{...}}, not {type(raw).__name__}")
        return PluginLoad(folder, None, tuple(problems))

    for key in raw:
        if key not in REQUIRED and key not in OPTIONAL:
            problem(key, f"unknown field; allowed: {_ALLOWED_FIELDS}")
    typed: dict[str, Any] = {}
    for key, expected in _FIELD_TYPES:
        if key not in raw:
            if key in REQUIRED:
                problem(key, "missing required field")
            continue
        value = raw[key]
        if not _check_type(value, expected):
            problem(key, f"must be {_type_name(expected)}, got {json.dumps(value)}")
            continue
        typed[key] = value

    plugin_id = typed.get("plugin")
    if plugin_id is not None:
        name_msgs = _name_problems("plugin", plugin_id)
        for message in name_msgs:
            problem("plugin", message)
        if not name_msgs and plugin_id != label:
            problem("plugin", f"{plugin_id!r} must equal the folder name {label!r}; rename one of them")
    engine = typed.get("engine")
    if engine is not None and engine not in ENGINES:
        problem("engine", f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    if "type" in typed and typed["type"] not in TYPES:
        problem("type", f"unknown type {typed['type']!r}; use one of {', '.join(TYPES)}")
    if "executionContext" in typed and typed["executionContext"] not in CONTEXTS:
        problem("executionContext",
                f"unknown context {typed['executionContext']!r}; use one of {', '.join(CONTEXTS)}")
    if "schedule" in typed:
        why = cron_problem(typed["schedule"])
        if why:
            problem("schedule", f"invalid schedule: {why}")
    if "description" in typed and not typed["description"].strip():
        problem("description", "must not be empty")
    if "retries" in typed and not 0 <= typed["retries"] <= 20:
        problem("retries", f"{typed['retries']} must be between 0 and 20")
    for key in ("retryDelayMinutes", "timeoutMinutes"):
        if key in typed and typed[key] <= 0:
            problem(key, f"{typed[key]} must be greater than 0")
    if "scheduleFromConfig" in typed and typed["scheduleFromConfig"] not in SCHEDULE_CONFIG_KEYS:
        problem("scheduleFromConfig", f"unknown key {typed['scheduleFromConfig']!r}; "
                f"use one of {', '.join(SCHEDULE_CONFIG_KEYS)}")

    if "enabledFromConfig" in typed and typed["enabledFromConfig"] not in ENABLED_CONFIG_KEYS:
        problem("enabledFromConfig", f"unknown key {typed['enabledFromConfig']!r}; "
                f"use one of {', '.join(ENABLED_CONFIG_KEYS)}")
    if "tasks" in typed:
        if engine != "native":
            problem("tasks", "only native plugins may declare tasks (functions of their .py file)")
        bad = [t for t in typed["tasks"] if not isinstance(t, str) or not _TASK_NAME.match(t)]
        if bad or not typed["tasks"]:
            problem("tasks", f"must be a non-empty list of Python function names, got {json.dumps(typed['tasks'])}")
        elif len(set(typed["tasks"])) != len(typed["tasks"]):
            problem("tasks", "lists a function twice")
    if "outlets" in typed and not all(isinstance(o, str) and "://" in o for o in typed["outlets"]):
        problem("outlets", "must be a list of asset URIs like 's3://{bucket}/{remote_directory}facts'")

    parts = split_plugin_id(plugin_id) if plugin_id else None
    if parts and engine in ENGINES:
        source = f"{plugin_id}{ENGINES[engine]}"
        if not os.path.isfile(os.path.join(base, source)):
            problem("engine", f"source file {source} is missing; a {engine} plugin's code is "
                    f"<plugin>{ENGINES[engine]} next to plugin.json")
    warnings = ()
    if not os.path.isfile(os.path.join(base, "assets", "index.html")):
        warnings = (f"{label}: assets/index.html is missing; the plugin has no documentation page",)

    if problems or parts is None:
        return PluginLoad(folder, None, tuple(problems), raw, warnings)
    return PluginLoad(
        folder,
        PluginManifest(
            folder=folder,
            plugin=plugin_id,
            name=parts[0],
            version=parts[1],
            engine=typed["engine"],
            enabled=typed["enabled"],
            schedule=typed["schedule"],
            description=typed["description"],
            type=typed["type"],
            execution_context=typed["executionContext"],
            raw=raw,
            retries=typed.get("retries"),
            retry_delay_minutes=typed.get("retryDelayMinutes"),
            timeout_minutes=typed.get("timeoutMinutes"),
            parameters=typed.get("parameters", {}),
            schedule_from_config=typed.get("scheduleFromConfig"),
            owner=typed.get("owner", "meccano"),
            enabled_from_config=typed.get("enabledFromConfig"),
            tasks=tuple(typed.get("tasks", ())),
            outlets=tuple(typed.get("outlets", ())),
            notify_on_failure=typed.get("notifyOnFailure", True),
        ),
        (),
        raw,
        warnings,
    )
