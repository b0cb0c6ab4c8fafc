"""The plugin contract in one place: ``plugin.json``, read safely and validated by a model.

:class:`PluginSpec` is the contract (strict types, no extra fields, bounds on every
number, lengths that keep DAG ids and tags within Airflow's limits); ``plugin.schema.json``
at the project root is generated from it (``python -m meccano plugins schema``) and kept
in sync by a test. :func:`load_plugin` reads one folder without ever hanging, exhausting
memory or following a link out of ``meccano_plugins/``, and reports every problem of the
plugin at once, each naming the plugin folder and the field.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import string
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

from meccano.contract.cron import cron_problem
from meccano.errors import PluginError, UnsafeFile
from meccano.files.bounded import file_kind, inside, read_bounded
from meccano.problems import Problem, Severity
from meccano.settings.messages import error_text
from meccano.settings.messages import show as _show


class Engine(StrEnum):
    """How a plugin runs: a script run by its interpreter (R, python, nodejs) or code the worker imports (native)."""

    R = "R"
    PYTHON = "python"
    NATIVE = "native"
    NODEJS = "nodejs"


class PluginType(StrEnum):
    """What a plugin is for: a report publishes a chart (the web view shows it); the others do work."""

    REPORT = "report"
    WORKER = "worker"
    STREAM = "stream"


class ExecutionContext(StrEnum):
    """Kept from the original ServiceManager (master or both nodes); no effect on Airflow."""

    MASTER = "master"
    BOTH = "both"


class ScheduleConfigKey(StrEnum):
    """A setting that replaces a plugin's schedule."""

    WARNINGLIMIT = "warninglimit"


class EnabledConfigKey(StrEnum):
    """A setting that turns a plugin's schedule off."""

    EXPORT_ENABLED = "export.enabled"


class OptionsSection(StrEnum):
    """A config.yml section whose options a run's dag_run.conf may override (read by meccano.fleet.options)."""

    CLEAN_MESSAGES = "cleanMessages"
    SENSOR_STATISTICS = "sensorStatistics"
    ALERTS = "alerts"
    FORECAST = "forecast"


# each engine's source file: <plugin><suffix>
SOURCE_SUFFIX: dict[str, str] = {Engine.R: ".R", Engine.PYTHON: ".py", Engine.NATIVE: ".py", Engine.NODEJS: ".js"}
OUTLET_FIELDS = ("export_target", "table", "bucket", "remote_directory")
# Names no plugin may take: the factory's own DAGs (invalid plugins, broken configuration).
INVALID_PREFIX = "meccano_invalid_"
CONFIG_ERROR_DAG = "meccano_config_error"
RESERVED_PREFIXES = (INVALID_PREFIX, CONFIG_ERROR_DAG)

MAX_MANIFEST_BYTES = 256 * 1024
DOCS_PAGE = "assets/index.html"  # a plugin's documentation page, in its folder
MAX_DEPTH = 16  # nesting of objects/lists inside plugin.json
MAX_NAME = 100  # dag_id = name; Airflow allows 250
MAX_VERSION = 40  # the tag "version:<version>" stays far below Airflow's 100 characters

NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_-]{0,99}"  # a plugin's name: its DAG id and its report's folder
VERSION_PATTERN = r"[0-9]{1,9}(?:\.[0-9]{1,9}){0,3}"
_VERSION = re.compile(VERSION_PATTERN)
# <name>:<version> as one pattern; its alphabet holds none of _UNSAFE, so a match needs no other check.
_PLUGIN_ID = re.compile(f"{NAME_PATTERN}:{VERSION_PATTERN}")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
_UNSAFE = ("/", "\\", "..", " ", ";", "'", '"', "`", "$", "|", "&", "<", ">", "*", "?", "{", "}", "\n", "\t")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*://\S+")
_FORMATTER = string.Formatter()

Identifier = Annotated[str, Field(pattern=f"^{_IDENT}$", max_length=64)]


class PluginSpec(BaseModel):
    """``plugin.json``: the seven fields of the original ServiceManager, then optional ones."""

    # Python names are snake_case; each field's key in plugin.json (and in the schema and the messages) is its
    # camelCase alias (retry_delay_minutes <- retryDelayMinutes): the contract is declared once, here, and
    # PluginManifest (a valid plugin) is this model with its folder.
    # defer_build: the schema is built when first used, so a DAG parse builds only PluginManifest's (it validates
    # no bare PluginSpec): 6-7 ms less per parse (bench/README.md, issue 37).
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, title="Meccano plugin.json",
                              alias_generator=to_camel, defer_build=True)

    plugin: str = Field(max_length=MAX_NAME + 1 + MAX_VERSION,
                        json_schema_extra={"pattern": f"^{NAME_PATTERN}:{VERSION_PATTERN}$",
                                           "not": {"pattern": "^(meccano_invalid_|meccano_config_error)"}},
                        description="<name>:<version>, equal to the folder name; the DAG id is <name>")
    engine: Engine = Field(
        strict=False, description="R, python, nodejs: <plugin>.R/.py/.js run as a script; native: <plugin>.py imported")
    enabled: bool = Field(description="false: the DAG exists, paused and unscheduled")
    schedule: str = Field(max_length=100, description="5-field cron or an Airflow preset (@daily, @once, ...)")
    description: str = Field(min_length=1, max_length=2000)
    type: PluginType = Field(strict=False)
    execution_context: ExecutionContext = Field(strict=False, description="kept from the original; no effect")
    retries: int | None = Field(default=None, ge=0, le=20, description="default 2")
    retry_delay_minutes: float | None = Field(default=None, gt=0, le=1440, allow_inf_nan=False,
                                            description="first retry delay, doubling; default 2")
    timeout_minutes: float | None = Field(default=None, gt=0, le=10080, allow_inf_nan=False,
                                         description="a run is stopped after this many minutes (at most a week)")
    parameters: dict[Identifier, Any] = Field(
        default_factory=dict, max_length=50,
        description="defaults of the run's parameters (Airflow Params): a trigger's conf overrides each")
    parameter_schemas: dict[Identifier, dict[str, Any]] = Field(
        default_factory=dict, max_length=50,
        description="a JSON schema per parameter (keys of parameters); the default and every override must "
                    "satisfy it. Without one, a parameter's type is that of its default")
    schedule_from_config: ScheduleConfigKey | None = Field(
        default=None, strict=False, description="warninglimit: run every WARNINGLIMIT minutes instead of schedule")
    owner: str = Field(default="meccano", min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
    enabled_from_config: EnabledConfigKey | None = Field(
        default=None, strict=False, description="export.enabled: unscheduled when EXPORT_ENABLED is false")
    options_from_config: OptionsSection | None = Field(
        default=None, strict=False,
        description="the config.yml section whose options (declared in meccano.settings.config) a run's "
                    "dag_run.conf may set besides parameters; any other conf key is refused")
    tasks: list[Identifier] | None = Field(
        default=None, min_length=1, max_length=50,
        description="native only: functions of <plugin>.py run in order, one task each")
    outlets: list[str] = Field(
        default_factory=list, max_length=20,
        description="asset URIs updated by the last task; {export_target} (the export's target URL), {table} "
                    "(one asset per exported table), {bucket} and {remote_directory} come from the export settings")
    notify_on_failure: bool = Field(
        default=True, description="false: no failure notification for this plugin's runs (plugins/failure_notices.py)")
    schema_ref: str | None = Field(
        default=None, alias="$schema", max_length=500,
        description="where editors find this schema (e.g. ../../plugin.schema.json); ignored by Meccano")

    @field_validator("plugin")
    @classmethod
    def _plugin(cls, value: str) -> str:
        messages = name_problems("plugin", value)
        if messages:
            raise ValueError(messages[0])
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        why = cron_problem(value)
        if why:
            raise ValueError(f"invalid schedule: {why}")
        return value

    @field_validator("description")
    @classmethod
    def _description(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("lists a function twice")
        return value

    @field_validator("outlets")
    @classmethod
    def _outlets(cls, value: list[str]) -> list[str]:
        for uri in value:
            why = outlet_problem(uri)
            if why:
                raise ValueError(why)
        return value


_ALLOWED_FIELDS = ", ".join(f.alias or name for name, f in PluginSpec.model_fields.items())
# plugin.json's fields of the original ServiceManager (its required ones), by key: the web listing's first columns
ORIGINAL_FIELDS: tuple[str, ...] = tuple(f.alias or name for name, f in PluginSpec.model_fields.items()
                                         if f.is_required())
_ENUM: dict[str, tuple[str, type[StrEnum]]] = {
    "engine": ("engine", Engine), "type": ("type", PluginType), "executionContext": ("context", ExecutionContext),
    "scheduleFromConfig": ("key", ScheduleConfigKey), "enabledFromConfig": ("key", EnabledConfigKey),
    "optionsFromConfig": ("section", OptionsSection)}


def outlet_problem(uri: str) -> str | None:
    """None when ``uri`` is an asset URI template using only the plain fields of ``OUTLET_FIELDS``."""
    if len(uri) > 1000:
        return f"an outlet is {len(uri)} characters; at most 1000"
    try:
        pieces = list(_FORMATTER.parse(uri))
    except ValueError as exc:
        return f"outlet {_show(uri)}: {exc}; write {{{{ and }}}} for literal braces"
    for _, name, spec, conversion in pieces:
        if name is None:
            continue
        if name not in OUTLET_FIELDS or spec or conversion:
            return (f"outlet {_show(uri)}: {{{name}{'!' + conversion if conversion else ''}"
                    f"{':' + spec if spec else ''}}} is not allowed; use only "
                    "{export_target}, {table}, {bucket} and {remote_directory}, plain "
                    "(no attributes, indexes or formats)")
    sample = uri.format(export_target="s3://b/d", table="facts", bucket="b", remote_directory="d")
    if not sample.isascii() or not _SCHEME.fullmatch(sample) or sample.startswith("airflow://"):
        return (f"outlet {_show(uri)} is not an asset URI like 's3://{{bucket}}/{{remote_directory}}/facts' "
                "(ASCII, a lower-case scheme, no spaces; airflow:// is reserved)")
    return None


class PluginManifest(PluginSpec):
    """A valid plugin: its ``plugin.json`` (every field of :class:`PluginSpec`, by its Python name) and the folder
    it was read from; name and version come from ``plugin``."""

    _folder: Path = PrivateAttr()

    @classmethod
    def read(cls, folder: Path, raw: dict[str, Any]) -> PluginManifest:
        """``raw`` validated as the contract (:class:`ValidationError` when it is not), read from ``folder``."""
        manifest = cls.model_validate(raw)
        manifest._folder = folder
        return manifest

    @property
    def folder(self) -> Path:
        return self._folder

    @property
    def name(self) -> str:
        return self.plugin.partition(":")[0]

    @property
    def version(self) -> str:
        return self.plugin.partition(":")[2]

    @property
    def dag_id(self) -> str:
        return self.name

    @property
    def source(self) -> Path:
        return self.folder / f"{self.plugin}{SOURCE_SUFFIX[self.engine]}"

    @property
    def docs(self) -> Path:
        return self.folder / DOCS_PAGE

    @property
    def version_key(self) -> tuple[int, ...]:
        return version_key(self.version)

    def param_schema(self, key: str) -> dict[str, Any]:
        """The JSON schema of parameter ``key``: the declared one, else the type of its default."""
        if key in self.parameter_schemas:
            return dict(self.parameter_schemas[key])
        return inferred_schema(self.parameters.get(key))


@dataclass(frozen=True)
class PluginLoad:
    """The outcome of reading one plugin folder: a manifest, or the problems."""

    folder: Path
    manifest: PluginManifest | None
    problems: tuple[Problem, ...] = ()  # each within the folder's name, where: the field
    raw: dict[str, Any] | None = None
    warnings: tuple[Problem, ...] = ()  # severity warning: what works, but not fully
    has_docs: bool = False  # the web view can serve the documentation page (DOCS_PAGE)

    @property
    def valid(self) -> bool:
        return self.manifest is not None and not self.problems


def inferred_schema(default: Any) -> dict[str, Any]:
    """A JSON schema type from a default value (bool before int: JSON true is not a number)."""
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
                       (list, "array"), (dict, "object")):
        if isinstance(default, kind):
            return {"type": name}
    return {}


def display_name(folder: Path) -> str:
    """The folder's name for messages: a name that is not UTF-8 (surrogate escapes) shows U+FFFD."""
    return folder.name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def invalid_dag_id(folder: Path) -> str:
    """``meccano_invalid_<sanitised folder name>_<8 hex of its hash>``: one id per folder name.

    The hash keeps folders that differ only in sanitised characters (``a:1.0``, ``a_1_0``)
    apart; the prefix is refused as a plugin name, so no valid plugin can take the id.
    """
    digest = hashlib.sha256(folder.name.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{INVALID_PREFIX}{re.sub(r'[^A-Za-z0-9_]', '_', folder.name)[:100]}_{digest}"


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")) if _VERSION.fullmatch(version) else (-1,)


def split_plugin_id(plugin_id: str) -> tuple[str, str] | None:
    """``'deviceAvgTime:1.0'`` -> ``('deviceAvgTime', '1.0')``; None when malformed."""
    if _PLUGIN_ID.fullmatch(plugin_id):
        name, _, version = plugin_id.partition(":")
        return name, version
    return None


def unsafe_characters(text: str) -> list[str]:
    return [c for c in _UNSAFE if c in text]


def reserved(name: str) -> bool:
    return name.startswith(RESERVED_PREFIXES)


def name_problems(label: str, text: str) -> list[str]:
    if _PLUGIN_ID.fullmatch(text) and not reserved(text):  # well formed, so no unsafe character either
        return []
    bad = unsafe_characters(text)
    if bad:
        shown = " ".join(repr(c) for c in bad)
        return [f"{label} {_show(text)} contains {shown}, which could escape the plugin folder or a shell; "
                "use letters, digits, '_' or '-', then ':' and a numeric version like 1.0"]
    parts = split_plugin_id(text)
    if parts is None:
        return [f"{label} {_show(text)} is not of the form <name>:<version> (name: a letter then at most "
                f"{MAX_NAME - 1} letters, digits, '_' or '-'; version: up to four numbers of at most 9 digits "
                "like 1.0)"]
    if reserved(parts[0]):
        return [f"{label} {_show(text)}: names starting with {' or '.join(RESERVED_PREFIXES)} are reserved "
                "for the DAGs that report invalid plugins and configuration; choose another name"]
    return []


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in plugin.json (JSON numbers must be finite)")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {_show(key)} (a JSON object names each key once)")
            seen.add(key)
    return out


def _int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > 18:
        raise ValueError(f"number {text[:20]}... has {digits} digits; plugin.json numbers have at most 18")
    return int(text)


def _float(text: str) -> float:
    number = float(text) if len(text) <= 40 else math.inf
    if not math.isfinite(number):
        raise ValueError(f"number {text[:20]}{'...' if len(text) > 20 else ''} is too large or too long "
                         "(plugin.json numbers must be finite, at most 40 characters)")
    return number


def _depth_problem(value: Any) -> str | None:
    """Nesting beyond :data:`MAX_DEPTH`, checked without recursion."""
    if isinstance(value, dict) and not any(isinstance(v, (dict, list)) for v in value.values()):
        return None  # the usual flat plugin.json: one level
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > MAX_DEPTH:
                return f"nested more than {MAX_DEPTH} levels deep"
            stack.extend((v, depth + 1) for v in (node.values() if isinstance(node, dict) else node))
    return None


# One decoder with the guards, made once: json.loads with hooks builds a decoder and its scanner on every call.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constant, parse_int=_int,
                            parse_float=_float)


def parse_manifest_text(data: bytes) -> Any:
    """``plugin.json`` bytes -> JSON value; raises ValueError naming the problem.

    Refuses what plain ``json.loads`` lets through: duplicate keys, NaN/Infinity, numbers
    of thousands of digits (Python's int limit raises deep inside), nesting that exhausts
    the recursion limit.
    """
    text = data.decode("utf-8")  # UnicodeDecodeError is a ValueError
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise ValueError(f"nested too deeply (more than {MAX_DEPTH} levels are refused)") from None


def _message(error: ErrorDetails) -> str:
    """A pydantic error as a sentence a plugin author can act on (the project's one translator,
    with the contract's own fields, names and patterns)."""
    kind, value = error["type"], error.get("input")
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if kind == "extra_forbidden":
        return f"unknown field; allowed: {_ALLOWED_FIELDS}"
    if kind == "string_pattern_mismatch":
        return _pattern_message(value, error["loc"], ctx)
    if kind in ("enum", "literal_error"):
        label, values = _ENUM.get(str(error["loc"][0]), ("value", None))
        choices = ", ".join(values) if values is not None else ctx.get("expected")
        return f"unknown {label} {_show(value)}; use one of {choices}"
    return error_text(error)


def _pattern_message(value: Any, loc: tuple[int | str, ...], ctx: dict[str, Any]) -> str:
    if loc[0] in ("tasks", "parameters", "parameterSchemas"):
        return (f"{_show(value)} is not a Python identifier (a letter or '_', then letters, digits or '_', "
                "at most 64 characters)")
    if loc[0] == "owner":
        return f"{_show(value)} must not hold control characters (newlines, tabs)"
    return f"{_show(value)} does not match {ctx.get('pattern')}"


def _where(loc: tuple[Any, ...]) -> str:
    out = str(loc[0]) if loc else "plugin.json"
    for part in loc[1:]:
        if part != "[key]":  # pydantic's marker for a bad dict key
            out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _schema_problems(spec: PluginSpec) -> list[Problem]:
    """Each declared parameter schema must be a valid JSON schema its default satisfies."""
    if not spec.parameter_schemas:
        return []
    import jsonschema  # lazy: jsonschema costs 48 ms at import (python -X importtime)

    out = []
    for key, schema in spec.parameter_schemas.items():
        where = f"parameterSchemas.{key}"
        if key not in spec.parameters:
            out.append(Problem(where, f"no parameter {key!r}; declare its default in parameters first"))
            continue
        if "default" in schema:
            out.append(Problem(where, "must not hold 'default'; the default is the value in parameters"))
            continue
        try:
            validator = jsonschema.validators.validator_for(schema)
            validator.check_schema(schema)
            validator(schema, format_checker=jsonschema.FormatChecker()).validate(spec.parameters[key])
        except jsonschema.SchemaError as exc:
            out.append(Problem(where, f"not a valid JSON schema: {exc.message[:200]}"))
        except jsonschema.ValidationError as exc:
            out.append(Problem(f"parameters.{key}", f"default {_show(spec.parameters[key])} does not satisfy its "
                        f"schema: {exc.message[:200]}"))
    return out


def load_plugin(folder: Path, root: Path | None = None) -> PluginLoad:
    """Read and validate ``folder/plugin.json``; never raises, never blocks.

    ``root`` is the plugins folder (default: the folder's parent): nothing is followed out
    of it. Any exception while reading or validating makes this plugin invalid, no other.
    """
    label = display_name(folder)
    try:
        return _load(folder, label, root if root is not None else folder.parent)
    except Exception as exc:  # the promise: one folder's content never breaks the others
        text = str(exc)
        problem = Problem("plugin.json", f"could not be read or validated: {type(exc).__name__}: "
                          f"{text if len(text) <= 200 else text[:200] + '...(cut)'}", within=label)
        return PluginLoad(folder, None, (problem,))


def _load(folder: Path, label: str, root: Path) -> PluginLoad:
    base = os.fspath(folder)
    problems = [Problem("folder", message, within=label) for message in name_problems("folder name", label)]

    def add(found: list[Problem]) -> None:
        if found:  # the usual valid plugin: nothing found, nothing to copy
            problems.extend(replace(p, within=label) for p in found)

    raw, refused = _read_raw(base, root)
    if refused is not None:
        add([refused])
        return PluginLoad(folder, None, tuple(problems))
    docs = docs_page_problem(base)
    warnings = (replace(docs, within=label),) if docs is not None else ()
    has_docs = docs is None
    if not isinstance(raw, dict):
        add([Problem("plugin.json", f"must hold a JSON object {{...}}, not {type(raw).__name__}")])
        return PluginLoad(folder, None, tuple(problems), None, warnings, has_docs)
    deep = _depth_problem(raw)
    if deep:
        add([Problem("plugin.json", deep)])
        return PluginLoad(folder, None, tuple(problems), raw, warnings, has_docs)

    spec, found, bad_fields = _validate(folder, raw)
    add(found)
    # Checks across fields (run on the raw values of the fields that passed).
    plugin_id = raw.get("plugin") if "plugin" not in bad_fields else None
    engine = raw.get("engine") if "engine" not in bad_fields else None
    add(_cross_field_problems(raw, label, plugin_id, engine))
    if spec is not None:
        add(_schema_problems(spec))
    parts = split_plugin_id(plugin_id) if isinstance(plugin_id, str) else None
    if parts and engine in SOURCE_SUFFIX:
        add(_source_problems(base, root, f"{plugin_id}{SOURCE_SUFFIX[engine]}", engine))

    if problems or spec is None or parts is None:
        return PluginLoad(folder, None, tuple(problems), raw, warnings, has_docs)
    return PluginLoad(folder, spec, (), raw, warnings, has_docs)


def docs_page_problem(base: str) -> Problem | None:
    """Why the web view cannot serve the folder ``base``'s documentation page, or None when it can: it serves
    ``assets/index.html`` only as a regular file reached without a symlink (two ``lstat``, nothing read)."""
    try:
        assets = os.lstat(os.path.join(base, "assets"))
        if not stat.S_ISDIR(assets.st_mode):
            return Problem("assets", f"is {file_kind(assets.st_mode)}, not a folder; the documentation page in it "
                           "is not served", "make assets/ a folder of the plugin (links are not followed)",
                           Severity.WARNING)
        page = os.lstat(os.path.join(base, DOCS_PAGE))
    except FileNotFoundError:
        return Problem(DOCS_PAGE, "is missing; the plugin has no documentation page",
                       "add the plugin's documentation page there (docs/plugins.md)", Severity.WARNING)
    except OSError as exc:
        return Problem(DOCS_PAGE, f"cannot be checked: {exc.strerror or exc}",
                       "make the plugin folder readable by Airflow", Severity.WARNING)
    if not stat.S_ISREG(page.st_mode):
        return Problem(DOCS_PAGE, f"is {file_kind(page.st_mode)}, not a regular file; the web view does not serve it",
                       "put the page itself there (links are not followed)", Severity.WARNING)
    return None


def _read_raw(base: str, root: Path) -> tuple[Any, Problem | None]:
    """The parsed plugin.json of the folder ``base``, or the problem that refused it."""
    if os.path.islink(base) and not inside(base, root):
        return None, Problem("folder", f"is a symbolic link to {os.path.realpath(base)!r}, outside "
                             f"{os.fspath(root)!r}; plugin folders must live inside the plugins folder")
    try:
        data = read_bounded(os.path.join(base, "plugin.json"), MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        return None, Problem("plugin.json", "missing; every plugin folder needs a plugin.json (see docs/plugins.md)")
    except UnsafeFile as exc:
        return None, Problem("plugin.json", str(exc))
    except OSError as exc:
        return None, Problem("plugin.json", f"cannot be read: {exc.strerror or exc}")
    try:
        return parse_manifest_text(data), None
    except json.JSONDecodeError as exc:
        return None, Problem("plugin.json", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
    except UnicodeDecodeError as exc:
        return None, Problem("plugin.json", f"is not UTF-8 text (byte {exc.object[exc.start]:#04x} at position "
                      f"{exc.start})")
    except ValueError as exc:
        text = str(exc)
        return None, Problem("plugin.json", f"refused: {text if len(text) <= 200 else text[:200] + '...(cut)'}")


def _validate(folder: Path, raw: dict[str, Any]) -> tuple[PluginManifest | None, list[Problem], set[str]]:
    """(the manifest or None, the problems found, the top-level fields that failed)."""
    try:
        return PluginManifest.read(folder, raw), [], set()
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        return (None, [Problem(_where(error["loc"]), _message(error)) for error in errors],
                {str(error["loc"][0]) if error["loc"] else "" for error in errors})


def _cross_field_problems(raw: dict[str, Any], label: str, plugin_id: Any, engine: Any) -> list[Problem]:
    found: list[Problem] = []
    if isinstance(plugin_id, str) and plugin_id != label:
        found.append(Problem("plugin", f"{_show(plugin_id)} must equal the folder name {label!r}; rename one of them"))
    if "tasks" in raw and raw["tasks"] is not None and engine is not None and engine != "native":
        found.append(Problem("tasks", "only native plugins may declare tasks (functions of their .py file)"))
    return found


def _source_problems(base: str, root: Path, name: str, engine: str) -> list[Problem]:
    """The engine's source file ``name`` must be a file of the folder (or a link inside the root)."""
    source = os.path.join(base, name)
    suffix = SOURCE_SUFFIX[engine]
    try:
        mode = os.lstat(source).st_mode
    except OSError:
        mode = 0
    if stat.S_ISREG(mode):  # a plain file is in its folder, and the folder (checked above) in the root
        return []
    if not (stat.S_ISLNK(mode) and os.path.isfile(source)):
        return [Problem("engine", f"source file {name} is missing; a {engine} plugin's code is "
                 f"<plugin>{suffix} next to plugin.json")]
    if not inside(source, root):  # only a link can lead out
        return [Problem("engine", f"source file {name} is a link to "
                 f"{os.path.realpath(source)!r}, outside the plugins folder; put the code itself in the folder")]
    return []


def json_schema() -> dict[str, Any]:
    """The contract as a JSON schema (``plugin.schema.json``), generated from :class:`PluginSpec`."""
    schema = PluginSpec.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def runtime_manifest(folder: str) -> PluginManifest:
    """Re-read the manifest when the task runs; a plugin broken since parsing fails clearly."""
    loaded = load_plugin(Path(folder))
    if loaded.manifest is None:
        raise PluginError("plugin became invalid since the DAG was parsed:\n" +
                          "\n".join(str(p) for p in loaded.problems))
    return loaded.manifest
