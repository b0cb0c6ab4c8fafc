"""Settings of the ServiceManager: ``config/config.yml`` sections, overridden by the
original environment variables, validated once, secret-safe.

Precedence (lowest to highest): built-in defaults (the original ServiceManager's),
the ``default:`` section of the YAML file, the section named by ``MECCANO_ENV``
(``NODE_ENV`` as the original called it), then each original environment variable.
Airflow connections (``meccano_iotdb``, ``aws_default``) win over all of these:
see :mod:`meccano.settings.connections`.
"""

from __future__ import annotations

import logging
import math
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError
from pydantic.dataclasses import dataclass as model

from meccano.errors import ConfigError
from meccano.settings.messages import error_text
from meccano.settings.zone import DEFAULT_ZONE

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "config" / "config.yml"
MAX_CONFIG_BYTES = 4 * 1024 * 1024



class Secret(SecretStr):
    """A string that never shows itself in ``repr``, ``str``, logs or errors (pydantic's SecretStr)."""

    def __init__(self, value: str | None = "") -> None:
        super().__init__(value or "")

    def get(self) -> str:
        return self.get_secret_value()

    def __bool__(self) -> bool:
        return bool(self.get_secret_value())

    def __repr__(self) -> str:
        return "Secret('***')" if self.get_secret_value() else "Secret('')"

    __str__ = __repr__


# --- one rule for booleans and numbers, everywhere ----------------------------------
# config.yml, environment variables, plugin options, dag_run.conf: the same words are
# booleans and the same texts are numbers, with the same messages.

TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0"})
_NUMBER_TEXT = re.compile(r"[+-]?[0-9]{1,40}(?:\.[0-9]{0,40})?(?:[eE][+-]?[0-9]{1,3})?")


def parse_bool(value: Any) -> bool:
    """true/false (YAML, JSON) or one of :data:`TRUE_WORDS` / :data:`FALSE_WORDS`, any case."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE_WORDS:
            return True
        if text in FALSE_WORDS:
            return False
    raise ValueError(f"{_shown(value)} is not a boolean; use true or false")


def parse_number(value: Any, whole: bool = True) -> int | float:
    """A whole number (``whole``) or a finite number from a number or its text; never a boolean."""
    kind = "whole number" if whole else "number"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{_shown(value)} is not a {kind}")
    if isinstance(value, str):
        text = value.strip()
        if not _NUMBER_TEXT.fullmatch(text):
            raise ValueError(f"{_shown(value)} is not a {kind}")
        number: int | float = int(text) if re.fullmatch(r"[+-]?[0-9]+", text) else float(text)
    else:
        number = value
    if isinstance(number, float):
        if not math.isfinite(number):
            raise ValueError(f"{_shown(value)} is not a finite {kind}")
        if whole:
            if number != int(number):
                raise ValueError(f"{_shown(value)} is not a whole number")
            number = int(number)
    return number


def range_problem(number: int | float, minimum: float | None = None, maximum: float | None = None) -> str | None:
    if minimum is not None and number < minimum:
        return f"{number} must be {minimum} or more"
    if maximum is not None and number > maximum:
        return f"{number} must be {maximum} or less"
    return None


def as_bool(value: Any, where: str, error: type[Exception] = ConfigError) -> bool:
    """:func:`parse_bool` with an error naming ``where`` (key and source)."""
    try:
        return parse_bool(value)
    except ValueError as exc:
        raise error(f"{where}: {exc}") from None


def as_number(value: Any, where: str, minimum: float | None = None, maximum: float | None = None, *,
              whole: bool = True, error: type[Exception] = ConfigError) -> int | float:
    """:func:`parse_number` within ``minimum``..``maximum``, with an error naming ``where``."""
    try:
        number = parse_number(value, whole)
    except ValueError as exc:
        raise error(f"{where}: {exc}") from None
    why = range_problem(number, minimum, maximum)
    if why:
        raise error(f"{where}: {why}")
    return number


def as_int(value: Any, where: str, minimum: float | None = None, maximum: float | None = None, *,
           error: type[Exception] = ConfigError) -> int:
    return int(as_number(value, where, minimum, maximum, whole=True, error=error))  # already whole


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "...(cut)"


# --- field types of the section models -----------------------------------------------

def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        raise ValueError(f"{_shown(value)} is not a text; YAML read the unquoted value as a "
                         f"{type(value).__name__}: quote it ('...')")
    raise ValueError(f"expected a text value, got a {type(value).__name__}")


def _secret(value: Any) -> Secret:
    # Never echo the value back: it may be the secret itself.
    if isinstance(value, Secret):
        return value
    if value is None or isinstance(value, str):
        return Secret(value or "")
    if isinstance(value, SecretStr):
        return Secret(value.get_secret_value())
    if isinstance(value, (bool, int, float)):
        raise ValueError("must be a string; quote it in the YAML file (YAML reads unquoted digits as a number, "
                         "a leading zero as octal, and boolean-like words as booleans); value not shown: secret")
    raise ValueError(f"expected a string, got a {type(value).__name__}; value not shown: secret")


def as_secret(value: Any, where: str, error: type[Exception] = ConfigError) -> Secret:
    """The secrets rule (a YAML string, never echoed) with an error naming ``where``."""
    try:
        return _secret(value)
    except ValueError as exc:
        raise error(f"{where}: {exc}") from None


def _zone_text(value: Any) -> str:
    # POSIX allows TZ=:Area/City; surrounding blanks are a typing slip, not part of the name.
    return _text(value).strip().lstrip(":")


def _zone(name: str) -> str:
    from meccano.settings.zone import zone_problem

    problem = zone_problem(name)
    if problem:
        raise ValueError(problem)
    return name


Text = Annotated[str, BeforeValidator(_text)]
Flag = Annotated[bool, BeforeValidator(parse_bool)]
SecretText = Annotated[Secret, BeforeValidator(_secret)]
TimeZone = Annotated[str, BeforeValidator(_zone_text), AfterValidator(_zone)]
Port = Annotated[int, BeforeValidator(parse_number), Field(ge=1, le=65535)]
Minutes = Annotated[int, BeforeValidator(parse_number), Field(ge=1, le=7 * 24 * 60)]

_MODEL = ConfigDict(hide_input_in_errors=True, arbitrary_types_allowed=True)


@model(frozen=True, config=_MODEL)
class MysqlSettings:
    host: Text = "localhost"
    port: Port = 3306
    user: Text = "root"
    password: SecretText = field(default_factory=lambda: Secret(""))
    database: Text = "IOTDB"
    connection_limit: Annotated[int, BeforeValidator(parse_number), Field(ge=1, le=1000)] = 10


@model(frozen=True, config=_MODEL)
class IotdbSettings:
    """Where the IOTDB lives. ``sqlite_path`` selects the embedded SQLite default."""

    conn_id: Text = "meccano_iotdb"
    sqlite_path: Text = ""


@model(frozen=True, config=_MODEL)
class AwsSettings:
    conn_id: Text = "aws_default"
    region: Text = "sa-east-1"
    access_key_id: Text = ""
    secret_access_key: SecretText = field(default_factory=lambda: Secret(""))
    topic_arn: Text = ""
    ssl_enabled: Flag = False
    endpoint_url: Text = ""


@model(frozen=True, config=_MODEL)
class ExportSettings:
    enabled: Flag = True
    bucket: Text = ""
    local_directory: Text = "/tmp/"
    remote_directory: Text = ""
    purge: Flag = True
    days: Annotated[int, BeforeValidator(parse_number), Field(ge=0, le=36500)] = 1  # a hundred years


@model(frozen=True, config=_MODEL)
class StatusSettings:
    """Device status thresholds, in minutes since the last announcement.

    The gateway's ``DeviceStatus`` view hard-codes 5 and 15: NORMAL up to
    ``normal_minutes``, WARNING up to ``warning_minutes``, FAIL beyond.
    """

    normal_minutes: Minutes = 5
    warning_minutes: Minutes = 15


@model(frozen=True, config=_MODEL)
class LegacySettings:
    """Variables of the old MIRROR/PORT master-slave pair: accepted, not used.

    Airflow's scheduler HA replaces them (README, "Migration").
    """

    mirror: Text = ""
    port: Port = 8000
    scheduler_monitor: Text = "*/1 * * * *"


_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@\s:]*):(?P<pw>[^/@\s]*)@")


def mask_url_credentials(text: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://user:***@host`` anywhere in ``text``."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


@model(frozen=True, config=_MODEL)
class Settings:
    warninglimit: Minutes = 60
    timezone: TimeZone = DEFAULT_ZONE
    forecast_days: Annotated[int, BeforeValidator(parse_number), Field(ge=1, le=366)] = 7
    mysql: MysqlSettings = field(default_factory=MysqlSettings)
    iotdb: IotdbSettings = field(default_factory=IotdbSettings)
    aws: AwsSettings = field(default_factory=AwsSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    status: StatusSettings = field(default_factory=StatusSettings)
    legacy: LegacySettings = field(default_factory=LegacySettings)
    reports_dir: Text = ""
    # Original variables/keys that are set but replaced by something else (meccano.settings.legacy).
    ignored: tuple[Any, ...] = field(default=(), repr=False)
    # Free-form sections for plugins; the credential sections are never kept here.
    sections: dict[str, Any] = field(default_factory=dict, repr=False)
    environment: str = "default"
    source: str = "built-in defaults"
    # Unknown and duplicate keys of the file: not errors, but named (config show, the log).
    warnings: tuple[str, ...] = field(default=(), repr=False)

    def section(self, name: str) -> dict[str, Any]:
        """A free-form section of the YAML file (plugin options), empty when absent."""
        value = self.sections.get(name) or {}
        return dict(value) if isinstance(value, Mapping) else {}

    def __repr__(self) -> str:
        parts = ", ".join(f"{f}={getattr(self, f)!r}" for f in (
            "warninglimit", "timezone", "forecast_days", "mysql", "iotdb", "aws", "export", "status", "legacy",
            "reports_dir", "environment", "source"))
        return mask_url_credentials(f"Settings({parts})")

    __str__ = __repr__


# --- the table of settings: YAML path, environment variable, target --------------

@dataclass(frozen=True)
class _Key:
    path: tuple[str, ...]  # YAML path as the original spelt it
    env: str | None  # original environment variable
    target: tuple[str, ...]  # attribute path in Settings


_KEYS: tuple[_Key, ...] = (
    _Key(("warninglimit",), "WARNINGLIMIT", ("warninglimit",)),
    _Key(("timezone",), "TZ", ("timezone",)),
    _Key(("scheduler", "monitor"), "SCHEDULER_MONITOR", ("legacy", "scheduler_monitor")),
    _Key(("mirror",), "MIRROR", ("legacy", "mirror")),
    _Key(("port",), "PORT", ("legacy", "port")),
    _Key(("aws", "region"), "AWS_REGION", ("aws", "region")),
    _Key(("aws", "accessKeyId"), "AWS_ACCESSKEYID", ("aws", "access_key_id")),
    _Key(("aws", "secretAccessKey"), "AWS_SECRETACCESSKEY", ("aws", "secret_access_key")),
    _Key(("aws", "topicArn"), "AWS_TOPICARN", ("aws", "topic_arn")),
    _Key(("aws", "sslEnabled"), "AWS_SSLENABLED", ("aws", "ssl_enabled")),
    _Key(("aws", "endpointUrl"), "AWS_ENDPOINTURL", ("aws", "endpoint_url")),
    _Key(("aws", "connId"), "MECCANO_AWS_CONN_ID", ("aws", "conn_id")),
    _Key(("mysql", "host"), "MYSQL_HOST", ("mysql", "host")),
    _Key(("mysql", "port"), "MYSQL_PORT", ("mysql", "port")),
    _Key(("mysql", "user"), "MYSQL_USER", ("mysql", "user")),
    _Key(("mysql", "password"), "MYSQL_PASSWORD", ("mysql", "password")),
    _Key(("mysql", "database"), "MYSQL_DATABASE", ("mysql", "database")),
    _Key(("mysql", "connectionLimit"), "MYSQL_CONNECTIONLIMIT", ("mysql", "connection_limit")),
    _Key(("iotdb", "connId"), "MECCANO_IOTDB_CONN_ID", ("iotdb", "conn_id")),
    _Key(("iotdb", "sqlitePath"), "MECCANO_IOTDB_SQLITE", ("iotdb", "sqlite_path")),
    _Key(("export", "enabled"), "EXPORT_ENABLED", ("export", "enabled")),
    _Key(("export", "bucket"), "EXPORT_BUCKET", ("export", "bucket")),
    _Key(("export", "localDirectory"), "EXPORT_LOCALDIRECTORY", ("export", "local_directory")),
    _Key(("export", "remoteDirectory"), "EXPORT_REMOTEDIRECTORY", ("export", "remote_directory")),
    _Key(("export", "purge"), "EXPORT_PURGE", ("export", "purge")),
    _Key(("export", "days"), "EXPORT_DAYS", ("export", "days")),
    _Key(("forecast", "days"), "FORECAST_DAYS", ("forecast_days",)),
    _Key(("status", "normalMinutes"), "STATUS_NORMAL_MINUTES", ("status", "normal_minutes")),
    _Key(("status", "warningMinutes"), "STATUS_WARNING_MINUTES", ("status", "warning_minutes")),
    _Key(("reports", "directory"), "MECCANO_REPORTS_DIR", ("reports_dir",)),
)


@model(frozen=True, config=_MODEL)
class _Top:
    """The top-level settings, validated like a section."""

    warninglimit: Minutes = 60
    timezone: TimeZone = DEFAULT_ZONE
    forecast_days: Annotated[int, BeforeValidator(parse_number), Field(ge=1, le=366)] = 7
    reports_dir: Text = ""


_SECTION_MODELS: dict[str, type] = {"mysql": MysqlSettings, "iotdb": IotdbSettings, "aws": AwsSettings,
                                    "export": ExportSettings, "status": StatusSettings, "legacy": LegacySettings}

# The original wrote "export: active: true" in its README example and read "enabled":
# accept both spellings.
_ALIASES: dict[tuple[str, ...], tuple[str, ...]] = {("export", "active"): ("export", "enabled")}

# Keys read elsewhere from the free-form sections (export/, fleet/, reports/, web/):
# known, so that only real typos are warned about.
_OTHER_KEYS: dict[str, set[str]] = {
    "export": {"active", "tables", "maxDaysPerRun", "partMegabytes", "partBytes", "purgeChunkRows", "gzipLevel",
               "format", "localTargetShared"},
    "forecast": {"degree", "historyDays", "minDays"},
    "reports": {"history", "shared"},
    "web": {"consoleToken", "consoleAllowList", "corsOrigins"},
    "sensorStatistics": {"windowHours", "minReadings", "lookbackHours", "rebuild"},
    "cleanMessages": {"maxAgeDays", "batchSize"},
    "alerts": {"maxListed"},
    # replaced by plugin schedules / WARNINGLIMIT: known, and named in Settings.ignored (meccano.settings.legacy)
    "scheduler": {"devices", "statistics", "export", "historyStatus"},
}
_KNOWN: dict[str, set[str]] = {}
for _k in _KEYS:
    _KNOWN.setdefault(_k.path[0], set()).update(_k.path[1:2])
for _section, _keys in _OTHER_KEYS.items():
    _KNOWN.setdefault(_section, set()).update(_keys)
_KNOWN_TOP = set(_KNOWN) | {"plugins"}
_KNOWN.setdefault("plugins", set()).update({"defaultTimeoutMinutes", "killGraceSeconds"})

_SECRET_SECTIONS = frozenset({"aws", "mysql"})


def _lookup(section: Mapping[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    node: Any = section
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


def _loader(duplicates: list[str]) -> type:
    """PyYAML's safe loader (the C one when available) that notes duplicate keys instead of
    silently keeping the last."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc, valid-type]  # base picked at run time: the C loader when PyYAML has one
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    key = key_node.value
                    if key in seen:
                        duplicates.append(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}; "
                                          "the last one wins")
                    seen.add(key)
            mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
            return mapping

    return Loader


def _read_yaml(path: Path, duplicates: list[str]) -> dict[str, Any]:
    import yaml

    if os.path.realpath(path) == os.devnull:  # MECCANO_CONFIG=/dev/null: an empty file, on purpose
        return {}
    try:
        info = os.stat(path)  # a mounted ConfigMap is a symlink: followed, but must end at a regular file
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path}: the configuration file is not a regular file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: the configuration file is {info.st_size:,} bytes; "
                              f"the limit is {MAX_CONFIG_BYTES:,}")
        with open(path, encoding="utf-8") as handle:
            text = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the configuration file is not UTF-8 text") from None
    try:
        data = yaml.load(text, Loader=_loader(duplicates))  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        pos = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: malformed YAML{pos}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: malformed YAML: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of thousands of digits (Python's int limit)
        raise ConfigError(f"{path}: unusable YAML value: {str(exc)[:200]}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (default:, prod:, ...)")
    return dict(data)


def _unknown_keys(merged: Mapping[str, Any], where: str) -> list[str]:
    out = []
    for key, value in merged.items():
        if key not in _KNOWN_TOP:
            if not isinstance(value, Mapping):  # a mapping may be a plugin's own section
                out.append(f"unknown key {key!r} in {where}; ignored (a typo? known: "
                           f"{', '.join(sorted(_KNOWN_TOP))})")
            continue
        if isinstance(value, Mapping) and key in _KNOWN:
            for sub in value:
                if sub not in _KNOWN[key]:
                    out.append(f"unknown key '{key}.{sub}' in {where}; ignored (known: "
                               f"{', '.join(sorted(_KNOWN[key]))})")
    return out


def _config_path(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> tuple[Path, str | None]:
    """(the file, who named it) — None when it is the built-in default location."""
    if path is not None:
        return Path(path), "the command"
    for var in ("MECCANO_CONFIG", "CONFIG_FILE"):
        if env.get(var):
            return Path(env[var]), f"environment variable {var}"
    return DEFAULT_CONFIG_FILE, None


def _merged_sections(raw: dict[str, Any], environment: str, cfg_path: Path) -> dict[str, Any]:
    """The ``default`` section with the ``environment`` section merged over it, old key names
    moved to their new place."""
    for name, section in raw.items():
        if section is not None and not isinstance(section, Mapping):
            raise ConfigError(f"{cfg_path}: section {name!r} must be a mapping")
    if environment != "default" and environment not in raw:
        known = ", ".join(sorted(map(str, raw))) or "none"
        raise ConfigError(
            f"MECCANO_ENV={environment!r}: no section {environment!r} in {cfg_path} (sections: {known})"
        )
    merged = _merge(dict(raw.get("default") or {}), raw.get(environment) or {}) \
        if environment != "default" else dict(raw.get("default") or {})
    merged = {str(k): v for k, v in merged.items()}
    for alias, real in _ALIASES.items():
        found, value = _lookup(merged, alias)
        if found and not _lookup(merged, real)[0]:
            node = merged.setdefault(real[0], {})
            if isinstance(node, Mapping):
                merged[real[0]] = {**node, real[1]: value}
    return merged


def _sourced_values(merged: Mapping[str, Any], env: Mapping[str, str],
                    src_file: str) -> dict[tuple[str, ...], tuple[Any, str, str]]:
    """target -> (value, YAML key, source) of every key set; the environment wins over the file."""
    values: dict[tuple[str, ...], tuple[Any, str, str]] = {}
    for key in _KEYS:
        found, value = _lookup(merged, key.path)
        if found:
            values[key.target] = (value, ".".join(key.path), src_file)
        if key.env and env.get(key.env, "") != "":
            values[key.target] = (env[key.env], ".".join(key.path), f"environment variable {key.env}")
    return values


def load_settings(path: str | os.PathLike[str] | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    """Read, merge and validate the configuration. Raises :class:`ConfigError`.

    Every bad value is reported at once, each naming its key and its source. Unknown and
    duplicate keys are warnings (``Settings.warnings``, logged).
    """
    env = os.environ if env is None else env
    cfg_path, named_by = _config_path(path, env)
    environment = env.get("MECCANO_ENV") or env.get("NODE_ENV") or "default"
    exists = cfg_path.exists()
    if named_by is not None and not exists:
        raise ConfigError(f"{cfg_path} (named by {named_by}): configuration file not found; fix the path "
                          "(built-in defaults are never used in place of a named file)")
    duplicates: list[str] = []
    raw: dict[str, Any] = _read_yaml(cfg_path, duplicates) if exists else {}
    merged = _merged_sections(raw, environment, cfg_path)
    src_file = f"{cfg_path} [{environment}]"
    warnings = [f"{cfg_path}: {d}" for d in duplicates] + _unknown_keys(merged, src_file)
    values = _sourced_values(merged, env, src_file)

    errors: list[str] = [
        f"{name} (from {src_file}): must be a mapping of keys ({', '.join(sorted(keys))}), "
        f"not {type(merged[name]).__name__}"
        for name, keys in sorted(_KNOWN.items())
        if keys and merged.get(name) is not None and not isinstance(merged[name], Mapping)]
    built: dict[str, Any] = {}

    def build(cls: type, targets: dict[str, tuple[Any, str, str]]) -> Any:
        try:
            return cls(**{name: item[0] for name, item in targets.items()})
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                name = str(error["loc"][0]) if error["loc"] else ""
                value, yaml_key, source = targets.get(name, (None, name, "?"))
                errors.append(f"{yaml_key} (from {source}): {error_text(error, str(value))}")
            return None

    for section, cls in _SECTION_MODELS.items():
        built[section] = build(cls, {t[1]: v for t, v in values.items() if len(t) == 2 and t[0] == section})
    top = {t[0]: v for t, v in values.items() if len(t) == 1}
    top_built = build(_Top, top)
    if errors:
        raise ConfigError("\n".join(errors))
    status = built["status"]
    if status.warning_minutes <= status.normal_minutes:
        raise ConfigError(
            f"status.warningMinutes ({status.warning_minutes}) must be greater than "
            f"status.normalMinutes ({status.normal_minutes}) (from {src_file} or environment)"
        )
    sections = {k: v for k, v in merged.items() if isinstance(v, Mapping) and k not in _SECRET_SECTIONS}
    for warning in warnings:
        log.warning("Meccano configuration: %s", warning)
    from meccano.settings.legacy import ignored_settings

    return Settings(
        ignored=ignored_settings(merged, env, src_file),
        warninglimit=top_built.warninglimit,
        timezone=top_built.timezone,
        forecast_days=top_built.forecast_days,
        reports_dir=top_built.reports_dir,
        sections=sections,
        environment=environment,
        source=str(cfg_path) if exists else "built-in defaults",
        warnings=tuple(warnings),
        **built,
    )


def setting_keys() -> list[tuple[str, str, str]]:
    """The key table: ``(YAML path, environment variable, kind)`` of every key that has a variable.

    Deployment files must pass each of these variables through (tests/test_compose.py checks it).
    """
    defaults = Settings()

    def kind(target: tuple[str, ...]) -> str:
        value: Any = defaults
        for attr in target:
            value = getattr(value, attr)
        return "bool" if isinstance(value, bool) else "int" if isinstance(value, int) else "str"

    return [(".".join(k.path), k.env, kind(k.target)) for k in _KEYS if k.env]
