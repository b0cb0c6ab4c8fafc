"""What one export run does: tables, retention, limits, dry run; from config + dag_run.conf.

``config.yml``::

    export:
      days: 1                  # EXPORT_DAYS: the default retention of every table
      tables:                  # optional; default: Facts only
        - table: Facts
          dateColumn: creationDate
        - table: DeviceHistoryStatus
          dateColumn: creationDate
          days: 365
      maxDaysPerRun: 7         # oldest day partitions handled per run (a backlog drains over runs)
      partMegabytes: 256       # uncompressed CSV per part file
      purgeChunkRows: 20000    # rows per purge transaction
      gzipLevel: 5             # gzip CSV parts
      format: csv              # csv (gzip) or parquet (zstd, typed by the table's columns)

The ``export:`` keys are declared and validated at load with every other setting
(:class:`meccano.settings.config.ExportSettings`); this module adds the run's own choices:
``dag_run.conf`` may override ``days`` (all tables), ``tables`` (names to run) and
``dry_run`` (export and verify, purge nothing). A run may only keep more than the configuration
(a longer ``days`` than each chosen table's, fewer tables, a dry run): any other key, or a shorter
``days``, is refused unless ``export.confMayWiden: true`` (config.yml only). ``days`` is a whole number of
0 to 36500 (a hundred years); ``tables`` names each configured table once (a name given twice counts once).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from meccano.errors import ExportError
from meccano.settings.config import Settings
from meccano.settings.messages import show
from meccano.settings.narrowing import refuse_widening
from meccano.settings.rules import MAX_RETENTION_DAYS, parse_bool, parse_number, range_problem
from meccano.settings.tables import TableEntry

__all__ = ["CONF_KEYS", "ExportOptions", "TableSpec", "load_options", "table_specs"]

CONF_KEYS = ("days", "tables", "dry_run")
MAX_CONF_TABLES = 100  # names in a run's ``tables`` (duplicates included)
MAX_CONF_TEXT = 10_000  # characters of a ``tables`` text


@dataclass(frozen=True)
class TableSpec:
    """One table with a retention: rows older than ``days`` days are exported then purged."""

    table: str
    date_column: str
    days: int
    prefix: str

    @classmethod
    def of(cls, entry: TableEntry, default_days: int) -> TableSpec:
        """A table of ``export.tables``; without its own ``days`` it keeps ``export.days``."""
        return cls(entry.table, entry.date_column, default_days if entry.days is None else entry.days, entry.prefix)


@dataclass(frozen=True)
class ExportOptions:
    tables: tuple[TableSpec, ...]
    purge: bool
    dry_run: bool
    max_days_per_run: int = 7
    part_bytes: int = 256 * 1024 * 1024
    purge_chunk_rows: int = 20_000
    gzip_level: int = 5
    file_format: str = "csv"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def purging(self) -> bool:
        return self.purge and not self.dry_run

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportOptions:
        tables = tuple(TableSpec(**t) for t in data["tables"])
        return cls(**{**data, "tables": tables})


def table_specs(settings: Settings) -> list[TableSpec]:
    """The tables of ``export.tables`` (validated at load), each with its retention."""
    return [TableSpec.of(entry, settings.export.days) for entry in settings.export.tables]


def _conf_days(value: Any) -> int:
    """``dag_run.conf days``: a problem of this run, not of the configuration (:class:`ExportError`)."""
    try:
        days = int(parse_number(value))
    except ValueError as exc:
        raise ExportError(f"dag_run.conf days: {exc}; allowed: 0 to {MAX_RETENTION_DAYS} (whole days)") from None
    why = range_problem(days, 0, MAX_RETENTION_DAYS)
    if why:
        raise ExportError(f"dag_run.conf days: {show(value)} is out of range; allowed: 0 to {MAX_RETENTION_DAYS} "
                          "(whole days)")
    return days


def _conf_dry_run(value: Any) -> bool:
    try:
        return parse_bool(value)
    except ValueError as exc:
        raise ExportError(f"dag_run.conf dry_run: {exc}") from None


def _chosen(specs: list[TableSpec], asked: Any) -> list[TableSpec]:
    """The configured tables the run names, each once, in the order first named (``"Facts,Facts"``: Facts once:
    a table twice would be exported twice into one prefix and purged twice)."""
    known = {s.table: s for s in specs}
    wanted = asked
    if isinstance(wanted, str) and len(wanted) <= MAX_CONF_TEXT:
        wanted = [w.strip() for w in wanted.split(",") if w.strip()]
    if (not isinstance(wanted, list) or not wanted or len(wanted) > MAX_CONF_TABLES
            or not all(isinstance(w, str) for w in wanted)):
        raise ExportError(f"dag_run.conf tables: {show(asked)} must be a list of 1 to {MAX_CONF_TABLES} table names "
                          f"(or one text of names separated by commas); configured: {', '.join(known)}")
    unique = list(dict.fromkeys(wanted))
    missing = [w for w in unique if w not in known]
    if missing:
        named = ", ".join(missing)
        named = named if len(named) <= 200 else named[:200] + "...(cut)"
        raise ExportError(f"dag_run.conf tables: {named} not configured for export; "
                          f"configured: {', '.join(known)} (config.yml export.tables)")
    return [known[w] for w in unique]


def _conf_keys(conf: dict[str, Any]) -> None:
    unknown = sorted(str(k) for k in conf if k not in CONF_KEYS)
    if unknown:
        raise ExportError(f"dag_run.conf {', '.join(unknown)}: not an export option; "
                          f"allowed: {', '.join(CONF_KEYS)}")


def _with_days(specs: list[TableSpec], days: int, may_widen: bool) -> list[TableSpec]:
    """Every chosen table with the run's ``days``; a shorter retention than configured is refused
    unless the configuration allows it (it would export and purge younger rows)."""
    shorter = [s for s in specs if days < s.days]
    if shorter:
        named = ", ".join(f"{s.table} ({s.days})" for s in shorter)
        refuse_widening("dag_run.conf days", days, f"shorter than the configured retention of {named}",
                        "purge younger rows", "export.confMayWiden", may_widen)
    return [TableSpec(s.table, s.date_column, days, s.prefix) for s in specs]


def load_options(settings: Settings, conf: dict[str, Any] | None = None) -> ExportOptions:
    """Options of this run: the settings (validated at load) with the run's ``dag_run.conf``; a bad
    ``dag_run.conf`` value raises a clear :class:`ExportError`."""
    conf = dict(conf or {})
    _conf_keys(conf)
    export = settings.export
    specs = table_specs(settings)
    if conf.get("tables") is not None:
        specs = _chosen(specs, conf["tables"])
    if conf.get("days") is not None:
        specs = _with_days(specs, _conf_days(conf["days"]), export.conf_may_widen)
    return ExportOptions(
        tables=tuple(specs),
        purge=export.purge,
        dry_run=_conf_dry_run(conf.get("dry_run", False)),
        max_days_per_run=export.max_days_per_run,
        part_bytes=export.part_size,
        purge_chunk_rows=export.purge_chunk_rows,
        gzip_level=export.gzip_level,
        file_format=export.format,
    )
