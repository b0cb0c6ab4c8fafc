"""``export.tables`` of config.yml: the tables the export chain empties, each with its retention.

Validated at load like every other setting (:mod:`meccano.settings.config`); the export reads
the result (:class:`TableEntry`; ``meccano.export.options.TableSpec`` with the retention filled in),
never the YAML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_PREFIX = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
DEFAULT_TABLES: tuple[dict[str, Any], ...] = ({"table": "Facts", "dateColumn": "creationDate"},)
_KEYS = ("table", "dateColumn", "days", "prefix")


@dataclass(frozen=True)
class TableEntry:
    """A table as config.yml lists it; ``days`` None: ``export.days``."""

    table: str
    date_column: str
    days: int | None
    prefix: str


def _ident(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _IDENT.fullmatch(value):
        raise ValueError(f"{where}: {value!r} is not a valid table/column name (letters, digits, '_')")
    return value


def _entry(item: Any, where: str) -> TableEntry:
    # lazy: meccano.settings.rules costs 2 ms at import (python -X importtime)
    from meccano.settings.rules import MAX_RETENTION_DAYS, parse_number, range_problem

    if not isinstance(item, dict):
        raise ValueError(f"{where}: must be a mapping like {{table: Facts, dateColumn: creationDate}}")
    unknown = set(item) - set(_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; use {', '.join(_KEYS)}")
    table = _ident(item.get("table"), f"{where}.table")
    column = _ident(item.get("dateColumn", "creationDate"), f"{where}.dateColumn")
    days: int | None = None
    if item.get("days") is not None:
        try:
            days = int(parse_number(item["days"]))
        except ValueError as exc:
            raise ValueError(f"{where}.days: {exc}") from None
        why = range_problem(days, 0, MAX_RETENTION_DAYS)
        if why:
            raise ValueError(f"{where}.days: {why}")
    prefix = str(item.get("prefix") or table.lower())
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"{where}.prefix: {prefix!r} must be lower-case letters, digits, '_' or '-'")
    return TableEntry(table, column, days, prefix)


def parse_tables(raw: Any) -> tuple[TableEntry, ...]:
    """``export.tables`` (None: Facts only); a ValueError whose message is complete (names the key)."""
    if isinstance(raw, tuple) and all(isinstance(t, TableEntry) for t in raw):
        return raw
    if raw is None:
        raw = list(DEFAULT_TABLES)
    if not isinstance(raw, list) or not raw:
        raise ValueError("config.yml export.tables: must be a non-empty list of "
                         "{table: Name, dateColumn: creationDate, days: N}")
    entries = tuple(_entry(item, f"config.yml export.tables[{i}]") for i, item in enumerate(raw))
    names = [e.table for e in entries]
    if len(set(names)) != len(names):
        raise ValueError("config.yml export.tables: a table is listed twice")
    return entries
