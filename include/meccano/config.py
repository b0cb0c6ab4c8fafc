"""Settings of the ServiceManager: ``config/config.yml`` sections, overridden by the
original environment variables, validated once, secret-safe.

Precedence (lowest to highest): built-in defaults (the original ServiceManager's),
the ``default:`` section of the YAML file, the section named by ``MECCANO_ENV``
(``NODE_ENV`` as the original called it), then each original environment variable.
Airflow connections (``meccano_iotdb``, ``aws_default``) win over all of these:
see :mod:`meccano.connections`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "config" / "config.yml"


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the key and its source."""


class Secret:
    """A string that never shows itself in ``repr``, ``str``, logs or errors."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value or ""

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class MysqlSettings:
    host: str = "localhost"
    port: int = 3306
    user: str = "root"
    password: Secret = field(default_factory=lambda: Secret(""))
    database: str = "IOTDB"
    connection_limit: int = 10


@dataclass(frozen=True)
class IotdbSettings:
    """Where the IOTDB lives. ``sqlite_path`` selects the embedded SQLite default."""

    conn_id: str = "meccano_iotdb"
    sqlite_path: str = ""


@dataclass(frozen=True)
class AwsSettings:
    conn_id: str = "aws_default"
    region: str = "sa-east-1"
    access_key_id: str = ""
    secret_access_key: Secret = field(default_factory=lambda: Secret(""))
    topic_arn: str = ""
    ssl_enabled: bool = False
    endpoint_url: str = ""


@dataclass(frozen=True)
class ExportSettings:
    enabled: bool = True
    bucket: str = ""
    local_directory: str = "/tmp/"
    remote_directory: str = ""
    purge: bool = True
    days: int = 1


@dataclass(frozen=True)
class StatusSettings:
    """Device status thresholds, in minutes since the last announcement.

    The gateway's ``DeviceStatus`` view hard-codes 5 and 15: NORMAL up to
    ``normal_minutes``, WARNING up to ``warning_minutes``, FAIL beyond.
    """

    normal_minutes: int = 5
    warning_minutes: int = 15


@dataclass(frozen=True)
class LegacySettings:
    """Variables of the old MIRROR/PORT master-slave pair: accepted, not used.

    Airflow's scheduler HA replaces them (README, "Migration").
    """

    mirror: str = ""
    port: int = 8000
    scheduler_monitor: str = "*/1 * * * *"


@dataclass(frozen=True)
class Settings:
    warninglimit: int = 60
    timezone: str = "Brazil/East"
    forecast_days: int = 7
    mysql: MysqlSettings = field(default_factory=MysqlSettings)
    iotdb: IotdbSettings = field(default_factory=IotdbSettings)
    aws: AwsSettings = field(default_factory=AwsSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    status: StatusSettings = field(default_factory=StatusSettings)
    legacy: LegacySettings = field(default_factory=LegacySettings)
    reports_dir: str = ""
    # Original variables/keys that are set but replaced by something else (meccano.legacy).
    ignored: tuple[Any, ...] = field(default=(), repr=False)
    # Free-form sections for plugins; the credential sections are never kept here.
    sections: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    environment: str = "default"
    source: str = "built-in defaults"

    def section(self, name: str) -> dict[str, Any]:
        """A free-form section of the YAML file (plugin options), empty when absent."""
        value = self.sections.get(name) or {}
        return dict(value) if isinstance(value, Mapping) else {}


# --- the table of settings: YAML path, environment variable, type -----------------

_INT, _POS_INT, _NONNEG_INT, _BOOL, _STR, _SECRET, _ZONE = (
    "int", "positive int", "non-negative int", "bool", "str", "secret", "zone",
)


@dataclass(frozen=True)
class _Key:
    path: tuple[str, ...]  # YAML path as the original spelt it
    env: str | None  # original environment variable
    kind: str
    target: tuple[str, ...]  # attribute path in Settings


_KEYS: tuple[_Key, ...] = (
    _Key(("warninglimit",), "WARNINGLIMIT", _POS_INT, ("warninglimit",)),
    _Key(("timezone",), "TZ", _ZONE, ("timezone",)),
    _Key(("scheduler", "monitor"), "SCHEDULER_MONITOR", _STR, ("legacy", "scheduler_monitor")),
    _Key(("mirror",), "MIRROR", _STR, ("legacy", "mirror")),
    _Key(("port",), "PORT", _POS_INT, ("legacy", "port")),
    _Key(("aws", "region"), "AWS_REGION", _STR, ("aws", "region")),
    _Key(("aws", "accessKeyId"), "AWS_ACCESSKEYID", _STR, ("aws", "access_key_id")),
    _Key(("aws", "secretAccessKey"), "AWS_SECRETACCESSKEY", _SECRET, ("aws", "secret_access_key")),
    _Key(("aws", "topicArn"), "AWS_TOPICARN", _STR, ("aws", "topic_arn")),
    _Key(("aws", "sslEnabled"), "AWS_SSLENABLED", _BOOL, ("aws", "ssl_enabled")),
    _Key(("aws", "endpointUrl"), "AWS_ENDPOINTURL", _STR, ("aws", "endpoint_url")),
    _Key(("aws", "connId"), "MECCANO_AWS_CONN_ID", _STR, ("aws", "conn_id")),
    _Key(("mysql", "host"), "MYSQL_HOST", _STR, ("mysql", "host")),
    _Key(("mysql", "port"), "MYSQL_PORT", _POS_INT, ("mysql", "port")),
    _Key(("mysql", "user"), "MYSQL_USER", _STR, ("mysql", "user")),
    _Key(("mysql", "password"), "MYSQL_PASSWORD", _SECRET, ("mysql", "password")),
    _Key(("mysql", "database"), "MYSQL_DATABASE", _STR, ("mysql", "database")),
    _Key(("mysql", "connectionLimit"), "MYSQL_CONNECTIONLIMIT", _POS_INT, ("mysql", "connection_limit")),
    _Key(("iotdb", "connId"), "MECCANO_IOTDB_CONN_ID", _STR, ("iotdb", "conn_id")),
    _Key(("iotdb", "sqlitePath"), "MECCANO_IOTDB_SQLITE", _STR, ("iotdb", "sqlite_path")),
    _Key(("export", "enabled"), "EXPORT_ENABLED", _BOOL, ("export", "enabled")),
    _Key(("export", "bucket"), "EXPORT_BUCKET", _STR, ("export", "bucket")),
    _Key(("export", "localDirectory"), "EXPORT_LOCALDIRECTORY", _STR, ("export", "local_directory")),
    _Key(("export", "remoteDirectory"), "EXPORT_REMOTEDIRECTORY", _STR, ("export", "remote_directory")),
    _Key(("export", "purge"), "EXPORT_PURGE", _BOOL, ("export", "purge")),
    _Key(("export", "days"), "EXPORT_DAYS", _NONNEG_INT, ("export", "days")),
    _Key(("forecast", "days"), "FORECAST_DAYS", _POS_INT, ("forecast_days",)),
    _Key(("status", "normalMinutes"), "STATUS_NORMAL_MINUTES", _POS_INT, ("status", "normal_minutes")),
    _Key(("status", "warningMinutes"), "STATUS_WARNING_MINUTES", _POS_INT, ("status", "warning_minutes")),
    _Key(("reports", "directory"), "MECCANO_REPORTS_DIR", _STR, ("reports_dir",)),
)

# The original wrote "export: active: true" in its README example and read "enabled":
# accept both spellings.
_ALIASES: dict[tuple[str, ...], tuple[str, ...]] = {("export", "active"): ("export", "enabled")}

# Top-level YAML keys that are free-form sections for plugins (passed through as is).
_KNOWN_TOP = {k.path[0] for k in _KEYS} | {"export", "plugins", "reports", "cleanMessages",
                                              "sensorStatistics", "forecast", "alerts", "web"}

_SECRET_SECTIONS = frozenset({"aws", "mysql"})

_TRUE = {"true", "1", "yes", "on", "y"}
_FALSE = {"false", "0", "no", "off", "n", ""}


def _convert(key: _Key, raw: Any, source: str) -> Any:
    where = f"{'.'.join(key.path)} (from {source})"
    if key.kind == _SECRET:
        # Never echo the value back: it may be the secret itself.
        if raw is not None and not isinstance(raw, (str, int)):
            raise ConfigError(f"{where}: expected a string; fix the value (not shown: secret)")
        return Secret("" if raw is None else str(raw))
    if key.kind == _ZONE:
        from meccano.zone import zone_problem

        name = "" if raw is None else str(raw).strip().lstrip(":")  # POSIX allows TZ=:Area/City
        problem = zone_problem(name)
        if problem:
            raise ConfigError(f"{where}: {problem}")
        return name
    if key.kind == _STR:
        if raw is None:
            return ""
        if isinstance(raw, (dict, list)):
            raise ConfigError(f"{where}: expected a text value, got a {type(raw).__name__}")
        return str(raw)
    if key.kind == _BOOL:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"{where}: {raw!r} is not a boolean; use true or false")
    # integers
    if isinstance(raw, bool):
        raise ConfigError(f"{where}: {raw!r} is not a whole number")
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ConfigError(f"{where}: {raw!r} is not a whole number") from None
    if key.kind == _POS_INT and value <= 0:
        raise ConfigError(f"{where}: {value} must be greater than 0")
    if key.kind == _NONNEG_INT and value < 0:
        raise ConfigError(f"{where}: {value} must be 0 or more")
    return value


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


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file ({exc.strerror})") from None
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        pos = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: malformed YAML{pos}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (default:, prod:, ...)")
    return dict(data)


def _set(tree: dict[str, Any], target: tuple[str, ...], value: Any) -> None:
    node = tree
    for part in target[:-1]:
        node = node.setdefault(part, {})
    node[target[-1]] = value


def load_settings(path: str | os.PathLike[str] | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    """Read, merge and validate the configuration. Raises :class:`ConfigError`."""
    env = os.environ if env is None else env
    cfg_path = Path(path or env.get("MECCANO_CONFIG") or env.get("CONFIG_FILE") or DEFAULT_CONFIG_FILE)
    environment = env.get("MECCANO_ENV") or env.get("NODE_ENV") or "default"
    raw: dict[str, Any] = _read_yaml(cfg_path) if cfg_path.exists() else {}
    if path is not None and not cfg_path.exists():
        raise ConfigError(f"{cfg_path}: configuration file not found")
    for name, section in raw.items():
        if section is not None and not isinstance(section, Mapping):
            raise ConfigError(f"{cfg_path}: section {name!r} must be a mapping")
    if environment != "default" and environment not in raw:
        known = ", ".join(sorted(raw)) or "none"
        raise ConfigError(
            f"MECCANO_ENV={environment!r}: no section {environment!r} in {cfg_path} (sections: {known})"
        )
    merged = _merge(dict(raw.get("default") or {}), raw.get(environment) or {}) \
        if environment != "default" else dict(raw.get("default") or {})
    for alias, real in _ALIASES.items():
        found, value = _lookup(merged, alias)
        if found and not _lookup(merged, real)[0]:
            _set(merged, real, value)
    src_file = f"{cfg_path} [{environment}]"

    values: dict[str, Any] = {}
    for key in _KEYS:
        found, value = _lookup(merged, key.path)
        if found:
            _set(values, key.target, _convert(key, value, src_file))
        if key.env and key.env in env and env[key.env] != "":
            _set(values, key.target, _convert(key, env[key.env], f"environment variable {key.env}"))

    status = StatusSettings(**values.get("status", {}))
    if status.warning_minutes <= status.normal_minutes:
        raise ConfigError(
            f"status.warningMinutes ({status.warning_minutes}) must be greater than "
            f"status.normalMinutes ({status.normal_minutes}) (from {src_file} or environment)"
        )
    sections = {k: v for k, v in merged.items() if isinstance(v, Mapping) and k not in _SECRET_SECTIONS}
    from meccano.legacy import ignored_settings

    return Settings(
        ignored=ignored_settings(merged, env, src_file),
        warninglimit=values.get("warninglimit", Settings.warninglimit),
        timezone=values.get("timezone", Settings.timezone),
        forecast_days=values.get("forecast_days", Settings.forecast_days),
        reports_dir=values.get("reports_dir", ""),
        mysql=MysqlSettings(**values.get("mysql", {})),
        iotdb=IotdbSettings(**values.get("iotdb", {})),
        aws=AwsSettings(**values.get("aws", {})),
        export=ExportSettings(**values.get("export", {})),
        status=status,
        legacy=LegacySettings(**values.get("legacy", {})),
        sections=sections,
        environment=environment,
        source=str(cfg_path) if cfg_path.exists() else "built-in defaults",
    )


def env_names() -> list[str]:
    """Every environment variable that overrides a YAML key (for the docs and the CLI)."""
    return [k.env for k in _KEYS if k.env]
