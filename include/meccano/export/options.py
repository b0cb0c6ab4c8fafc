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

``dag_run.conf`` may override ``days`` (all tables), ``tables`` (names to run) and
``dry_run`` (export and verify, purge nothing).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from meccano.errors import ExportError
from meccano.export.model import FORMATS
from meccano.settings.config import Settings, as_bool, as_int

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
DEFAULT_TABLES = ({"table": "Facts", "dateColumn": "creationDate"},)


@dataclass(frozen=True)
class TableSpec:
    """One table with a retention: rows older than ``days`` days are exported then purged."""

    table: str
    date_column: str
    days: int
    prefix: str


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


def _int(value: Any, where: str, minimum: int, maximum: int | None = None) -> int:
    return as_int(value, where, minimum, maximum, error=ExportError)  # the one rule (meccano.settings.config)


def _bool(value: Any, where: str) -> bool:
    return as_bool(value, where, error=ExportError)


def _ident(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _IDENT.fullmatch(value):
        raise ExportError(f"{where}: {value!r} is not a valid table/column name (letters, digits, '_')")
    return value


def table_specs(section: dict[str, Any], default_days: int) -> list[TableSpec]:
    raw = section.get("tables")
    if raw is None:
        raw = list(DEFAULT_TABLES)
    if not isinstance(raw, list) or not raw:
        raise ExportError("config.yml export.tables: must be a non-empty list of "
                          "{table: Name, dateColumn: creationDate, days: N}")
    specs: list[TableSpec] = []
    for i, item in enumerate(raw):
        where = f"config.yml export.tables[{i}]"
        if not isinstance(item, dict):
            raise ExportError(f"{where}: must be a mapping like {{table: Facts, dateColumn: creationDate}}")
        unknown = set(item) - {"table", "dateColumn", "days", "prefix"}
        if unknown:
            raise ExportError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                              "use table, dateColumn, days, prefix")
        table = _ident(item.get("table"), f"{where}.table")
        column = _ident(item.get("dateColumn", "creationDate"), f"{where}.dateColumn")
        days = default_days if item.get("days") is None else _int(item["days"], f"{where}.days", 0)
        prefix = str(item.get("prefix") or table.lower())
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", prefix):
            raise ExportError(f"{where}.prefix: {prefix!r} must be lower-case letters, digits, '_' or '-'")
        specs.append(TableSpec(table, column, days, prefix))
    names = [s.table for s in specs]
    if len(set(names)) != len(names):
        raise ExportError("config.yml export.tables: a table is listed twice")
    return specs


def load_options(settings: Settings, conf: dict[str, Any] | None = None) -> ExportOptions:
    """Options of this run; bad config or ``dag_run.conf`` values raise a clear :class:`ExportError`."""
    conf = dict(conf or {})
    section = settings.section("export")
    days = settings.export.days
    if conf.get("days") is not None:
        days = _int(conf["days"], "dag_run.conf days", 0)
    specs = table_specs(section, settings.export.days)
    if conf.get("days") is not None:
        specs = [TableSpec(s.table, s.date_column, days, s.prefix) for s in specs]
    if conf.get("tables") is not None:
        wanted = conf["tables"]
        if isinstance(wanted, str):
            wanted = [w.strip() for w in wanted.split(",") if w.strip()]
        if not isinstance(wanted, list) or not wanted:
            raise ExportError(f"dag_run.conf tables: {conf['tables']!r} must be a list of table names")
        known = {s.table: s for s in specs}
        missing = [w for w in wanted if w not in known]
        if missing:
            raise ExportError(f"dag_run.conf tables: {', '.join(map(str, missing))} not configured for export; "
                              f"configured: {', '.join(known)} (config.yml export.tables)")
        specs = [known[w] for w in wanted]
    return ExportOptions(
        tables=tuple(specs),
        purge=settings.export.purge,
        dry_run=_bool(conf.get("dry_run", False), "dag_run.conf dry_run"),
        max_days_per_run=_int(section.get("maxDaysPerRun", 7), "config.yml export.maxDaysPerRun", 1),
        part_bytes=_int(section.get("partMegabytes", 256), "config.yml export.partMegabytes", 1) * 1024 * 1024
        if "partBytes" not in section else _int(section["partBytes"], "config.yml export.partBytes", 1024),
        purge_chunk_rows=_int(section.get("purgeChunkRows", 20_000), "config.yml export.purgeChunkRows", 1),
        gzip_level=_level(section.get("gzipLevel", 5)),
        file_format=_format(section.get("format", "csv")),
    )


def _level(value: Any) -> int:
    return _int(value, "config.yml export.gzipLevel", 1, 9)


def _format(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in FORMATS:
        raise ExportError(f"config.yml export.format: {value!r} is not a supported file format; use "
                          f"{' or '.join(FORMATS)}")
    return text
