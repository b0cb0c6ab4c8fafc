"""Settings of the ServiceManager: ``config/config.yml`` sections, overridden by the
original environment variables, validated once, secret-safe.

Precedence (lowest to highest): built-in defaults (the original ServiceManager's),
the ``default:`` section of the YAML file, the section named by ``MECCANO_ENV``
(``NODE_ENV`` as the original called it), then each original environment variable.
Airflow connections (``meccano_iotdb``, ``aws_default``) win over all of these:
see :mod:`meccano.settings.connections`.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import logging
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError

from meccano.errors import ConfigError
from meccano.secrets.redaction import mask_url_credentials
from meccano.settings.messages import error_text, show
from meccano.settings.rules import (
    MAX_RETENTION_DAYS,
    parse_bool,
    parse_number,
)
from meccano.settings.tables import TableEntry, parse_tables
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


# --- field types of the section models -----------------------------------------------

def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        raise ValueError(f"{show(value, 60, as_python=True)} is not a text; YAML read the unquoted value as a "
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


def _zone_text(value: Any) -> str:
    # POSIX allows TZ=:Area/City; surrounding blanks are a typing slip, not part of the name.
    return _text(value).strip().lstrip(":")


def _zone(name: str) -> str:
    # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
    from meccano.settings.zone import zone_problem

    problem = zone_problem(name)
    if problem:
        raise ValueError(problem)
    return name


# --- the declaration of a setting ---------------------------------------------------

FROM_SOURCE = "{yaml} (from {source})"  # how a bad value is named: mysql.port (from environment variable MYSQL_PORT)
NAMED_BY_VARIABLE = "{source}"  # environment variable MECCANO_WEB_CORS_ORIGINS
KEY_AND_VARIABLE = "{yaml} / {env}"  # reports.shared / MECCANO_REPORTS_SHARED
IN_CONFIG_YML = "config.yml {yaml}"  # config.yml export.gzipLevel


@dataclass(frozen=True)
class Key:
    """Where a setting is read, in the ``Annotated`` type of its field in a section model.

    The field itself declares the type, range (``Field(ge=..., le=...)``), default and secrecy
    (:data:`SecretText`); this says the rest: the YAML path as the original spelt it
    (``aws.accessKeyId``), the environment variable that overrides it, and how a bad value is
    named in the error, from the file (``where``) and from the variable (``where_env``): formats
    of ``{yaml}``, ``{source}`` and ``{env}``, an empty one when the value's own message names it.
    Every table of keys (load order, known keys, ``config show``, compose, the README) is derived
    from these declarations (:func:`declared_keys`).
    """

    yaml: str
    env: str | None = None
    help: str = ""
    where: str = FROM_SOURCE
    where_env: str = FROM_SOURCE

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.yaml.split("."))

    def label(self, source: str, from_env: bool) -> str:
        return (self.where_env if from_env else self.where).format(yaml=self.yaml, source=source, env=self.env)


def _real(value: Any) -> float:
    return float(parse_number(value, whole=False))


def _positive(value: Any) -> float:
    number = _real(value)
    if not number > 0:
        raise ValueError(f"{show(value, 60, as_python=True)} must be a number greater than 0")
    return number


def _shared(value: Any) -> bool:
    # unset or empty: not declared shared
    return False if value is None or (isinstance(value, str) and not value.strip()) else parse_bool(value)


def _items(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise ValueError("expected a list of strings or a comma separated string")


def _networks(value: Any) -> tuple[Network, ...]:
    if isinstance(value, tuple) and all(isinstance(v, (ipaddress.IPv4Network, ipaddress.IPv6Network)) for v in value):
        return value
    networks = []
    for item in _items(value):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network like 10.0.0.0/24") from None
    return tuple(networks)


def _origins(value: Any) -> tuple[str, ...]:
    origins = _items(value)
    for origin in origins:
        if origin == "*" or not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
            raise ValueError(f"{origin!r} is not an origin like https://console.example.com "
                             "(scheme://host[:port], no path; '*' is not allowed)")
    return origins


def _os_user(value: Any) -> str:
    name = _text(value).strip()
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", name):
        raise ValueError(f"{name!r} is not an OS user name (lower case letters, digits, '_' and '-', at most 32)")
    if name == "root":
        raise ValueError("'root' cannot run plugin scripts: name the unprivileged user made for them "
                         "(meccano-plugin, created by scripts/plugin-user.sh and the image)")
    return name


class IsolationMode(StrEnum):
    """How script plugins are kept apart from the worker (``plugins.isolation``; scripts/isolation.py,
    docs/security.md)."""

    USER = "user"  # the plugin user (runAs): the worker must be root or reach the image's sudo rule
    POD = "pod"  # a Kubernetes pod of its own (the cncf.kubernetes provider)
    NONE = "none"  # the operator trusts every script author: scripts run as the worker's own user


def _isolation(value: Any) -> IsolationMode:
    text = _text(value).strip().lower()
    try:
        return IsolationMode(text)
    except ValueError:
        raise ValueError(f"{show(value, 60, as_python=True)} is not an isolation mode; use user (the plugin user, the "
                         "default), pod (a Kubernetes pod per script) or none (scripts run as the worker: trusted "
                         "authors only)") from None


def _optional_path(value: Any) -> str:
    text = _text(value).strip()
    if text and not os.path.isabs(text):
        raise ValueError(f"{text!r} is not an absolute path")
    return text


def _file_format(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in EXPORT_FORMATS:
        raise ValueError(f"{value!r} is not a supported file format; use {' or '.join(EXPORT_FORMATS)}")
    return text


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
EXPORT_FORMATS = ("csv", "parquet")  # what meccano.export.model.FORMATS can write (a test keeps them equal)

Text = Annotated[str, BeforeValidator(_text)]
Flag = Annotated[bool, BeforeValidator(parse_bool)]
SecretText = Annotated[Secret, BeforeValidator(_secret)]
TimeZone = Annotated[str, BeforeValidator(_zone_text), AfterValidator(_zone)]
Port = Annotated[int, BeforeValidator(parse_number), Field(ge=1, le=65535)]
Minutes = Annotated[int, BeforeValidator(parse_number), Field(ge=1, le=7 * 24 * 60)]
Whole = Annotated[int, BeforeValidator(parse_number)]
Real = Annotated[float, BeforeValidator(_real)]
Positive = Annotated[float, BeforeValidator(_positive)]
Shared = Annotated[bool, BeforeValidator(_shared)]
OsUser = Annotated[str, BeforeValidator(_os_user)]
Isolation = Annotated[IsolationMode, BeforeValidator(_isolation)]
AbsolutePath = Annotated[str, BeforeValidator(_optional_path)]

class _Section(BaseModel):
    """A section of settings: immutable, every value validated, no value echoed back in an error."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True, arbitrary_types_allowed=True)


class MysqlSettings(_Section):
    host: Annotated[Text, Key("mysql.host", "MYSQL_HOST")] = "localhost"
    port: Annotated[Port, Key("mysql.port", "MYSQL_PORT")] = 3306
    user: Annotated[Text, Key("mysql.user", "MYSQL_USER")] = "root"
    password: Annotated[SecretText, Key("mysql.password", "MYSQL_PASSWORD")] = Field(
        default_factory=lambda: Secret(""))
    database: Annotated[Text, Key("mysql.database", "MYSQL_DATABASE")] = "IOTDB"
    connection_limit: Annotated[Whole, Field(ge=1, le=1000), Key("mysql.connectionLimit", "MYSQL_CONNECTIONLIMIT")] = 10


class IotdbSettings(_Section):
    """Where the IOTDB lives. ``sqlite_path`` selects the embedded SQLite default."""

    conn_id: Annotated[Text, Key("iotdb.connId", "MECCANO_IOTDB_CONN_ID")] = "meccano_iotdb"
    sqlite_path: Annotated[Text, Key("iotdb.sqlitePath", "MECCANO_IOTDB_SQLITE")] = ""


class AwsSettings(_Section):
    conn_id: Annotated[Text, Key("aws.connId", "MECCANO_AWS_CONN_ID")] = "aws_default"
    region: Annotated[Text, Key("aws.region", "AWS_REGION")] = "sa-east-1"
    access_key_id: Annotated[Text, Key("aws.accessKeyId", "AWS_ACCESSKEYID")] = ""
    secret_access_key: Annotated[SecretText, Key("aws.secretAccessKey", "AWS_SECRETACCESSKEY")] = Field(
        default_factory=lambda: Secret(""))
    topic_arn: Annotated[Text, Key("aws.topicArn", "AWS_TOPICARN")] = ""
    ssl_enabled: Annotated[Flag, Key("aws.sslEnabled", "AWS_SSLENABLED")] = False
    endpoint_url: Annotated[Text, Key("aws.endpointUrl", "AWS_ENDPOINTURL")] = ""


class ExportSettings(_Section):
    enabled: Annotated[Flag, Key("export.enabled", "EXPORT_ENABLED")] = True
    bucket: Annotated[Text, Key("export.bucket", "EXPORT_BUCKET")] = ""
    # empty: $AIRFLOW_HOME/meccano-exports, the worker's own (export/target.py local_directory); never /tmp by default
    local_directory: Annotated[Text, Key("export.localDirectory", "EXPORT_LOCALDIRECTORY")] = ""
    remote_directory: Annotated[Text, Key("export.remoteDirectory", "EXPORT_REMOTEDIRECTORY")] = ""
    purge: Annotated[Flag, Key("export.purge", "EXPORT_PURGE")] = True
    days: Annotated[Whole, Field(ge=0, le=MAX_RETENTION_DAYS), Key("export.days", "EXPORT_DAYS")] = 1
    local_target_shared: Annotated[Shared, Key("export.localTargetShared", "EXPORT_LOCAL_TARGET_SHARED",
                                               where=KEY_AND_VARIABLE, where_env=KEY_AND_VARIABLE)] = False
    # the messages of these keys named "config.yml" before they were validated at load: kept
    tables: Annotated[tuple[TableEntry, ...], BeforeValidator(parse_tables), Key("export.tables", where="")] = Field(
        default_factory=lambda: parse_tables(None))
    max_days_per_run: Annotated[Whole, Field(ge=1), Key("export.maxDaysPerRun", where=IN_CONFIG_YML)] = 7
    part_megabytes: Annotated[Whole, Field(ge=1), Key("export.partMegabytes", where=IN_CONFIG_YML)] = 256
    part_bytes: Annotated[Whole, Field(ge=1024), Key("export.partBytes", where=IN_CONFIG_YML)] = 0  # 0: partMegabytes
    purge_chunk_rows: Annotated[Whole, Field(ge=1), Key("export.purgeChunkRows", where=IN_CONFIG_YML)] = 20_000
    gzip_level: Annotated[Whole, Field(ge=1, le=9), Key("export.gzipLevel", where=IN_CONFIG_YML)] = 5
    # S3's multipart parts are 5 MiB at least (but the last); s3fs uploads a file of two chunks or more in parts
    upload_chunk_megabytes: Annotated[Whole, Field(ge=5, le=5120),
                                      Key("export.uploadChunkMegabytes", where=IN_CONFIG_YML)] = 8
    upload_concurrency: Annotated[Whole, Field(ge=1, le=64), Key("export.uploadConcurrency", where=IN_CONFIG_YML)] = 4
    format: Annotated[str, BeforeValidator(_file_format), Key("export.format", where=IN_CONFIG_YML)] = "csv"
    # A triggered run's dag_run.conf may only keep more (longer days, fewer tables, dry run) unless this is on.
    conf_may_widen: Annotated[Flag, Key("export.confMayWiden", where=IN_CONFIG_YML)] = False

    @property
    def part_size(self) -> int:
        """Uncompressed bytes per part file: ``partBytes`` when set, else ``partMegabytes``."""
        return self.part_bytes or self.part_megabytes * 1024 * 1024


class StatusSettings(_Section):
    """Device status thresholds, in minutes since the last announcement.

    The gateway's ``DeviceStatus`` view hard-codes 5 and 15: NORMAL up to
    ``normal_minutes``, WARNING up to ``warning_minutes``, FAIL beyond.
    """

    normal_minutes: Annotated[Minutes, Key("status.normalMinutes", "STATUS_NORMAL_MINUTES")] = 5
    warning_minutes: Annotated[Minutes, Key("status.warningMinutes", "STATUS_WARNING_MINUTES")] = 15


class LegacySettings(_Section):
    """Variables of the old MIRROR/PORT master-slave pair: accepted, not used.

    Airflow's scheduler HA replaces them (docs/switching-over.md, "What maps where").
    """

    mirror: Annotated[Text, Key("mirror", "MIRROR")] = ""
    port: Annotated[Port, Key("port", "PORT")] = 8000
    scheduler_monitor: Annotated[Text, Key("scheduler.monitor", "SCHEDULER_MONITOR")] = "*/1 * * * *"


class ReportsSettings(_Section):
    """The report store's history and whether its local folder is one volume every host mounts
    (its location is ``Settings.reports_dir``)."""

    history: Annotated[Whole, Field(ge=1, le=10_000), Key("reports.history", "MECCANO_REPORTS_HISTORY",
                                                         where=KEY_AND_VARIABLE, where_env=KEY_AND_VARIABLE)] = 10
    shared: Annotated[Shared, Key("reports.shared", "MECCANO_REPORTS_SHARED",
                                  where=KEY_AND_VARIABLE, where_env=KEY_AND_VARIABLE)] = False


class WebSettings(_Section):
    """Who may read the plugin listing without an Airflow login, and CORS (see :mod:`meccano.web.settings`)."""

    console_token: Annotated[SecretText, Key("web.consoleToken", "MECCANO_WEB_CONSOLE_TOKEN",
                                             where_env=NAMED_BY_VARIABLE)] = Field(default_factory=lambda: Secret(""))
    allow_list: Annotated[tuple[Network, ...], BeforeValidator(_networks),
                          Key("web.consoleAllowList", "MECCANO_WEB_CONSOLE_ALLOW", where_env=NAMED_BY_VARIABLE)] = ()
    cors_origins: Annotated[tuple[str, ...], BeforeValidator(_origins),
                            Key("web.corsOrigins", "MECCANO_WEB_CORS_ORIGINS", where_env=NAMED_BY_VARIABLE)] = ()


class PluginLimits(_Section):
    """Limits of a script plugin's run (see :mod:`meccano.scripts.environment`), and whether a plugin whose
    interpreter is missing starts paused."""

    default_timeout_minutes: Annotated[Positive, Key(
        "plugins.defaultTimeoutMinutes", "MECCANO_PLUGIN_TIMEOUT_MINUTES", where_env=NAMED_BY_VARIABLE,
        help="limit of a script without timeoutMinutes")] = 60.0
    kill_grace_seconds: Annotated[Positive, Key(
        "plugins.killGraceSeconds", "MECCANO_PLUGIN_KILL_GRACE", where_env=NAMED_BY_VARIABLE,
        help="SIGTERM -> SIGKILL wait when it is stopped")] = 10.0
    # Off in production: the dag-processor's host need not have the workers' interpreters. The demo (one
    # host) turns it on, so an R plugin on a machine without R is created paused instead of failing its runs.
    pause_without_interpreter: Annotated[Flag, Key(
        "plugins.pauseWithoutInterpreter", "MECCANO_PLUGIN_PAUSE_WITHOUT_INTERPRETER",
        help="a new DAG whose engine's interpreter is not on the parsing host's PATH starts paused")] = False
    # Scripts never run as the worker's OS user: they could read every process's environment of that user
    # (docs/security.md). The image's sudo rule names this user too (docker/Dockerfile, PLUGIN_USER).
    run_as: Annotated[OsUser, Key(
        "plugins.runAs", "MECCANO_PLUGIN_RUN_AS", where_env=NAMED_BY_VARIABLE,
        help="unprivileged OS user every script plugin runs as (never root; created by the set-up scripts)")] = \
        "meccano-plugin"
    # How a script is kept from the worker: one of IsolationMode (meccano.scripts.isolation, docs/security.md).
    isolation: Annotated[Isolation, Key(
        "plugins.isolation", "MECCANO_PLUGIN_ISOLATION", where_env=NAMED_BY_VARIABLE,
        help=f"{', '.join(list(IsolationMode)[:-1])} or {IsolationMode.NONE}: how R, python and nodejs scripts are "
             "kept from the worker")] = IsolationMode.USER
    pod_image: Annotated[Text, Key(
        "plugins.podImage", "MECCANO_PLUGIN_POD_IMAGE", where_env=NAMED_BY_VARIABLE,
        help="isolation pod: the image of the script pods (the workers' own image)")] = ""
    pod_namespace: Annotated[Text, Key(
        "plugins.podNamespace", "MECCANO_PLUGIN_POD_NAMESPACE", where_env=NAMED_BY_VARIABLE,
        help="isolation pod: namespace of the script pods (empty: the worker's own)")] = ""
    pod_secret: Annotated[Text, Key(
        "plugins.podSecret", "MECCANO_PLUGIN_POD_SECRET", where_env=NAMED_BY_VARIABLE,
        help="isolation pod: Kubernetes Secret whose keys MYSQL_PASSWORD / AWS_SECRETACCESSKEY the pod's secret "
             "variables reference (empty: their values are in the pod spec)")] = ""
    pod_template_file: Annotated[AbsolutePath, Key(
        "plugins.podTemplateFile", "MECCANO_PLUGIN_POD_TEMPLATE", where_env=NAMED_BY_VARIABLE,
        help="isolation pod: a pod template merged under the script pod (volumes, node selector, resources)")] = ""


# Options of the fleet plugins (meccano.fleet): these defaults, the YAML section, then the plugin's
# parameters / the run's conf, which meccano.fleet.options checks against the same declaration.

class ForecastOptions(_Section):
    degree: Annotated[Whole, Field(ge=0, le=10), Key("forecast.degree", help="degree of the polynomial")] = 2
    history_days: Annotated[Whole, Field(ge=2, le=3660), Key(
        "forecast.historyDays", help="complete days of history the fit uses")] = 30
    min_days: Annotated[Whole, Field(ge=2, le=3660), Key(
        "forecast.minDays", help="fewer days of history than this (or degree + 2): skip")] = 7


class SensorStatisticsOptions(_Section):
    window_hours: Annotated[Real, Field(ge=1, le=8784), Key(
        "sensorStatistics.windowHours", help="readings of the last N hours (Facts.creationDate)")] = 24
    min_readings: Annotated[Whole, Field(ge=1, le=1_000_000_000), Key(
        "sensorStatistics.minReadings", help="fewer readings than this in the window: keep the previous row")] = 2
    lookback_hours: Annotated[Real, Field(ge=0, le=8784), Key(
        "sensorStatistics.lookbackHours",
        help="re-aggregate every run the hours holding readings of the last N hours")] = 2
    rebuild: Annotated[Whole, Field(ge=0, le=1), Key(
        "sensorStatistics.rebuild",
        help="1: re-aggregate the whole window from Facts (after rows arrived very late)")] = 0


class CleanMessagesOptions(_Section):
    max_age_days: Annotated[Real, Field(ge=0.001, le=MAX_RETENTION_DAYS), Key(
        "cleanMessages.maxAgeDays", help="delete any message older than this many days")] = 30
    batch_size: Annotated[Whole, Field(ge=1, le=100_000), Key(
        "cleanMessages.batchSize", help="messages deleted per transaction")] = 5000
    conf_may_widen: Annotated[Flag, Key(
        "cleanMessages.confMayWiden",
        help="true: a run's parameters may set a shorter maxAgeDays than this configuration")] = False


class AlertsOptions(_Section):
    max_listed: Annotated[Whole, Field(ge=1, le=10_000), Key(
        "alerts.maxListed", help="devices listed per section of a digest")] = 100


class _Top(_Section):
    """The top-level settings, validated like a section (``Settings`` holds them at its top)."""

    warninglimit: Annotated[Minutes, Key("warninglimit", "WARNINGLIMIT")] = 60
    timezone: Annotated[TimeZone, Key("timezone", "TZ")] = DEFAULT_ZONE
    forecast_days: Annotated[Whole, Field(ge=1, le=366), Key(
        "forecast.days", "FORECAST_DAYS", help="days to forecast")] = 7
    reports_dir: Annotated[Text, Key("reports.directory", "MECCANO_REPORTS_DIR")] = ""


_TOP_DEFAULTS: dict[str, Any] = {name: info.default for name, info in _Top.model_fields.items()}
# Settings attribute -> its model; "" holds the top-level settings (_Top).
_SECTION_MODELS: dict[str, type] = {
    "": _Top, "mysql": MysqlSettings, "iotdb": IotdbSettings, "aws": AwsSettings, "export": ExportSettings,
    "status": StatusSettings, "legacy": LegacySettings, "reports": ReportsSettings, "web": WebSettings,
    "plugins": PluginLimits, "forecast": ForecastOptions, "sensor_statistics": SensorStatisticsOptions,
    "clean_messages": CleanMessagesOptions, "alerts": AlertsOptions}


@dataclass(frozen=True)
class Settings:
    """Every setting, validated: :func:`load_settings` builds it from the section models, which
    validate each value (a plain dataclass itself, so that a DAG parse builds no model twice)."""

    # the top-level settings: declared (key, variable, bounds, default) once, in _Top
    warninglimit: int = _TOP_DEFAULTS["warninglimit"]
    timezone: str = _TOP_DEFAULTS["timezone"]
    forecast_days: int = _TOP_DEFAULTS["forecast_days"]
    mysql: MysqlSettings = field(default_factory=MysqlSettings)
    iotdb: IotdbSettings = field(default_factory=IotdbSettings)
    aws: AwsSettings = field(default_factory=AwsSettings)
    export: ExportSettings = field(default_factory=ExportSettings)
    status: StatusSettings = field(default_factory=StatusSettings)
    legacy: LegacySettings = field(default_factory=LegacySettings)
    reports_dir: str = _TOP_DEFAULTS["reports_dir"]
    reports: ReportsSettings = field(default_factory=ReportsSettings)
    web: WebSettings = field(default_factory=WebSettings)
    plugins: PluginLimits = field(default_factory=PluginLimits)
    forecast: ForecastOptions = field(default_factory=ForecastOptions)
    sensor_statistics: SensorStatisticsOptions = field(default_factory=SensorStatisticsOptions)
    clean_messages: CleanMessagesOptions = field(default_factory=CleanMessagesOptions)
    alerts: AlertsOptions = field(default_factory=AlertsOptions)
    # Original variables/keys that are set but replaced by something else (meccano.settings.legacy).
    ignored: tuple[Any, ...] = field(default=(), repr=False)
    # Free-form sections for plugins; the credential sections are never kept here.
    sections: dict[str, Any] = field(default_factory=dict, repr=False)
    environment: str = "default"
    source: str = "built-in defaults"
    # Unknown and duplicate keys of the file: not errors, but named (config show, the log).
    warnings: tuple[str, ...] = field(default=(), repr=False)

    def section(self, name: str) -> dict[str, Any]:
        """A free-form section of the YAML file (a plugin's own options), empty when absent."""
        value = self.sections.get(name) or {}
        return dict(value) if isinstance(value, Mapping) else {}

    def options(self, section: str) -> dict[str, Any]:
        """The declared settings of a YAML section, by their YAML names (``{"degree": 2, ...}``)."""
        return {key.path[-1]: _value_at(self, target) for key, target in declared_keys()
                if key.path[0] == section and len(key.path) == 2}

    def __repr__(self) -> str:
        parts = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.repr)
        return mask_url_credentials(f"Settings({parts})")

    __str__ = __repr__


def _value_at(settings: Any, target: tuple[str, ...]) -> Any:
    value = settings
    for attr in target:
        value = getattr(value, attr)
    return value


@functools.cache
def declared_keys() -> tuple[tuple[Key, tuple[str, ...]], ...]:
    """Every declared setting: its :class:`Key` and its attribute path in :class:`Settings`."""
    out = []
    for section, cls in _SECTION_MODELS.items():
        for name, info in cls.__pydantic_fields__.items():  # type: ignore[attr-defined]
            for item in info.metadata:
                if isinstance(item, Key):
                    out.append((item, (section, name) if section else (name,)))
    return tuple(out)


def field_info(target: tuple[str, ...]) -> Any:
    """pydantic's FieldInfo of a declared setting (its type, range and default)."""
    cls = _SECTION_MODELS[target[0] if len(target) == 2 else ""]
    return cls.__pydantic_fields__[target[-1]]  # type: ignore[attr-defined]


# The original wrote "export: active: true" in its README example and read "enabled":
# accept both spellings.
# old YAML paths still read, and the key they now mean
KEY_ALIASES: dict[tuple[str, ...], tuple[str, ...]] = {("export", "active"): ("export", "enabled")}


def _known_keys() -> tuple[dict[str, set[str]], set[str]]:
    """Known YAML keys, by section, from the declarations (and the replaced ones of meccano.settings.legacy):
    only real typos are warned about."""
    # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
    from meccano.settings.legacy import IGNORED

    known: dict[str, set[str]] = {}
    paths = [key.path for key, _ in declared_keys()] + list(KEY_ALIASES) + [path for path, _ in IGNORED.values()]
    for path in paths:
        known.setdefault(path[0], set()).update(path[1:2])
    return known, set(known)


_KNOWN, _KNOWN_TOP = _known_keys()

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
    import yaml  # lazy: yaml costs 9 ms at import (python -X importtime)

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
    import yaml  # lazy: yaml costs 9 ms at import (python -X importtime)

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


def config_file_path() -> Path:
    """The configuration file this process reads: ``MECCANO_CONFIG``/``CONFIG_FILE``, else ``config/config.yml``."""
    return _config_path(None, os.environ)[0]


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
    for alias, real in KEY_ALIASES.items():
        found, value = _lookup(merged, alias)
        if found and not _lookup(merged, real)[0]:
            node = merged.setdefault(real[0], {})
            if isinstance(node, Mapping):
                merged[real[0]] = {**node, real[1]: value}
    return merged


def _sourced_values(merged: Mapping[str, Any], env: Mapping[str, str],
                    src_file: str) -> dict[tuple[str, ...], tuple[Any, str]]:
    """target -> (value, how an error names it) of every key set; the environment wins over the file."""
    values: dict[tuple[str, ...], tuple[Any, str]] = {}
    for key, target in declared_keys():
        found, value = _lookup(merged, key.path)
        if found:
            values[target] = (value, key.label(src_file, from_env=False))
        if key.env and env.get(key.env, "") != "":
            values[target] = (env[key.env], key.label(f"environment variable {key.env}", from_env=True))
    return values


def _build(cls: type, targets: dict[str, tuple[Any, str]], errors: list[str]) -> Any:
    """One section model from its values; each bad value is one line of ``errors``."""
    try:
        return cls(**{name: item[0] for name, item in targets.items()})
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            name = str(error["loc"][0]) if error["loc"] else ""
            value, where = targets.get(name, (None, name))
            text = error_text(error, str(value))
            errors.append(f"{where}: {text}" if where else text)
        return None


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
    built = {section: _build(cls, {t[-1]: v for t, v in values.items() if t[:-1] == ((section,) if section else ())},
                             errors)
             for section, cls in _SECTION_MODELS.items()}
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
    # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
    from meccano.settings.legacy import ignored_settings

    top = built.pop("")
    return Settings(
        ignored=ignored_settings(merged, env, src_file),
        **{name: getattr(top, name) for name in _Top.model_fields},
        sections=sections,
        environment=environment,
        source=str(cfg_path) if exists else "built-in defaults",
        warnings=tuple(warnings),
        **built,
    )


def kind_of(target: tuple[str, ...]) -> str:
    """The kind of a declared setting's value, as deployment files and the README speak of it."""
    value = _value_at(Settings(), target)
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Secret):
        return "secret"
    return "int" if isinstance(value, int) else "number" if isinstance(value, float) else "str"


def setting_keys() -> list[tuple[str, str, str]]:
    """The key table: ``(YAML path, environment variable, kind)`` of every key that has a variable.

    Deployment files must pass each of these variables through (tests/deploy/test_compose_file.py checks it).
    """
    return [(key.yaml, key.env, kind_of(target)) for key, target in declared_keys() if key.env]
