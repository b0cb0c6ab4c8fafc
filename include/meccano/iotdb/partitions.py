"""Daily RANGE partitions of a TIMESTAMP column (``Facts.creationDate``): inspect, plan, SQL.

MariaDB 10.11 and MySQL 8 partition a ``TIMESTAMP`` column only through
``UNIX_TIMESTAMP(col)`` (``RANGE COLUMNS`` refuses TIMESTAMP; other functions on it are not
allowed in a partitioning expression), so every bound is an integer epoch. The epoch of a day's
start is asked from the database itself (``SELECT UNIX_TIMESTAMP(:start)``) with the export's
own day boundaries (:func:`day_bounds`, which the export plans its table-days by) on the export's own connection:
a partition then holds exactly the rows that the export's ``creationDate >= start AND < end``
selects for that day, in whatever zone the session compares them.

Layout: ``p0`` (everything before the first daily partition), one ``pYYYYMMDD`` per day
up to some days ahead, and ``pmax`` (``MAXVALUE``, the catch-all).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from meccano.errors import PartitionError
from meccano.iotdb.db import Iotdb

CATCH_ALL = "pmax"
BEFORE = "p0"
DIALECTS = ("mariadb", "mysql8")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_DAY_NAME = re.compile(r"^p(\d{4})(\d{2})(\d{2})$")



def _q(name: str) -> str:
    if not _IDENT.fullmatch(name):  # fullmatch: '$' alone would let a trailing newline through
        raise PartitionError(f"{name!r} is not a plain SQL identifier")
    return f"`{name}`"


def day_name(day: date) -> str:
    return f"p{day:%Y%m%d}"


def name_day(name: str) -> date | None:
    m = _DAY_NAME.match(name)
    return date(int(m[1]), int(m[2]), int(m[3])) if m else None


@dataclass(frozen=True)
class RangePart:
    name: str
    less_than: int | None  # None: MAXVALUE
    rows: int  # InnoDB's estimate (information_schema), not a count


@dataclass
class Layout:
    """How a table is partitioned now (``method`` is None when it is not)."""

    table: str
    method: str | None = None
    expression: str = ""
    parts: list[RangePart] = field(default_factory=list)

    @property
    def partitioned(self) -> bool:
        return self.method is not None

    def by_day_of(self, column: str) -> bool:
        """RANGE on ``UNIX_TIMESTAMP(column)``: the layout this module builds."""
        expr = self.expression.replace("`", "").replace(" ", "").lower()
        return self.method == "RANGE" and expr == f"unix_timestamp({column.lower()})"

    def bounds(self) -> list[tuple[RangePart, int | None, int | None]]:
        """Each partition with its ``[low, high)`` epochs (None: unbounded)."""
        out: list[tuple[RangePart, int | None, int | None]] = []
        low: int | None = None
        for part in self.parts:
            out.append((part, low, part.less_than))
            low = part.less_than
        return out

    def exact(self, low: int, high: int) -> RangePart | None:
        """The partition whose range is exactly ``[low, high)``, if any."""
        for part, lo, hi in self.bounds():
            if lo == low and hi == high:
                return part
        return None

    def containing(self, epoch: int) -> RangePart | None:
        for part, lo, hi in self.bounds():
            if (lo is None or epoch >= lo) and (hi is None or epoch < hi):
                return part
        return None

    @property
    def catch_all(self) -> RangePart | None:
        return self.parts[-1] if self.parts and self.parts[-1].less_than is None else None

    @property
    def last_bound(self) -> int | None:
        """Upper bound of the last bounded partition (where the catch-all starts)."""
        bounded = [p.less_than for p in self.parts if p.less_than is not None]
        return bounded[-1] if bounded else None

    def ahead(self, tomorrow_start: int) -> int:
        """Bounded partitions that start at or after ``tomorrow_start``: the future days still covered."""
        return sum(1 for part, lo, hi in self.bounds() if hi is not None and lo is not None and lo >= tomorrow_start)


def server_dialect(db: Iotdb) -> str:
    version = str(db.scalar("SELECT VERSION()") or "")
    return "mariadb" if "mariadb" in version.lower() else "mysql8"


def inspect(db: Iotdb, table: str) -> Layout:
    rows = db.query(
        "SELECT PARTITION_NAME AS name, PARTITION_METHOD AS method, PARTITION_EXPRESSION AS expr, "
        "PARTITION_DESCRIPTION AS descr, TABLE_ROWS AS nrows FROM INFORMATION_SCHEMA.PARTITIONS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t ORDER BY PARTITION_ORDINAL_POSITION", t=table)
    if not rows:
        raise PartitionError(f"table {table} does not exist in this IOTDB; run `python -m meccano db init`")
    if rows[0]["method"] is None:
        return Layout(table)
    parts = [RangePart(str(r["name"]), None if str(r["descr"]).upper() == "MAXVALUE" else int(r["descr"]),
                       int(r["nrows"] or 0)) for r in rows]
    return Layout(table, str(rows[0]["method"]), str(rows[0]["expr"] or ""), parts)


def day_bounds(day: date) -> tuple[str, str]:
    """The ``[start, end)`` of a day as the export selects it (and a daily partition holds it)."""
    return f"{day.isoformat()} 00:00:00", f"{(day + timedelta(days=1)).isoformat()} 00:00:00"


def day_starts(db: Iotdb, days: Sequence[date]) -> dict[date, int]:
    """Epoch of each day's start as the export defines the day (its bounds, this session's zone)."""
    out: dict[date, int] = {}
    for i in range(0, len(days), 200):
        batch = list(days[i:i + 200])
        cols = ", ".join(f"UNIX_TIMESTAMP(:d{k}) AS e{k}" for k in range(len(batch)))
        row = db.query(f"SELECT {cols}", **{f"d{k}": day_bounds(d)[0] for k, d in enumerate(batch)})[0]
        for k, d in enumerate(batch):
            if row[f"e{k}"] is None:
                raise PartitionError(f"the database has no epoch for the start of {d} in its session time zone")
            out[d] = int(row[f"e{k}"])
    return out


def epochs(db: Iotdb, *moments: str) -> list[int]:
    """``UNIX_TIMESTAMP`` of the export's own bound strings, in this session's zone."""
    cols = ", ".join(f"UNIX_TIMESTAMP(:m{k}) AS e{k}" for k in range(len(moments)))
    row = db.query(f"SELECT {cols}", **{f"m{k}": m for k, m in enumerate(moments)})[0]
    return [int(row[f"e{k}"]) for k in range(len(moments))]


def daily_bounds(db: Iotdb, first: date, last: date) -> list[tuple[str, int]]:
    """``(pYYYYMMDD, start of the next day)`` for each day ``first..last``."""
    days = [first + timedelta(days=i) for i in range((last - first).days + 2)]
    starts = day_starts(db, days)
    return [(day_name(d), starts[d + timedelta(days=1)]) for d in days[:-1]]


# --- SQL ---------------------------------------------------------------------------------------

def _values(bounds: Iterable[tuple[str, int]]) -> list[str]:
    return [f"PARTITION {_q(name)} VALUES LESS THAN ({int(epoch)})" for name, epoch in bounds]


def partition_by_sql(table: str, column: str, first_day_start: int, days: Sequence[tuple[str, int]],
                     dialect: str) -> str:
    """Convert ``table``: ``p0`` before the first day, one partition per day, ``pmax`` at the end.

    ``ALGORITHM=COPY, LOCK=SHARED``: both servers copy the table (no in-place partitioning) and
    let readers go on; writers wait until the copy ends.
    """
    _check_dialect(dialect)
    parts = [*_values([(BEFORE, first_day_start), *days]), f"PARTITION {_q(CATCH_ALL)} VALUES LESS THAN MAXVALUE"]
    return (f"ALTER TABLE {_q(table)} ALGORITHM=COPY, LOCK=SHARED PARTITION BY RANGE (UNIX_TIMESTAMP({_q(column)})) "
            "(\n  " + ",\n  ".join(parts) + ")")


def reorganize_catch_all_sql(table: str, days: Sequence[tuple[str, int]], dialect: str) -> str:
    """New daily partitions split off the catch-all (rows already in it move to their day)."""
    _check_dialect(dialect)
    parts = [*_values(days), f"PARTITION {_q(CATCH_ALL)} VALUES LESS THAN MAXVALUE"]
    return f"ALTER TABLE {_q(table)} REORGANIZE PARTITION {_q(CATCH_ALL)} INTO (\n  " + ",\n  ".join(parts) + ")"


def holding_sql(show_create: str, table: str, holding: str) -> str:
    """An empty, unpartitioned twin of ``table`` (what ``EXCHANGE PARTITION`` needs), from its
    ``SHOW CREATE TABLE`` without the partitioning clause: one DDL, no file per partition
    (``CREATE TABLE ... LIKE`` then ``REMOVE PARTITIONING`` costs two, and one file per partition).

    MariaDB prints `` PARTITION BY RANGE ...``; MySQL 8 wraps it: ``/*!50100 PARTITION BY ... */``.
    """
    head = f"CREATE TABLE {_q(table)} "
    if not show_create.startswith(head):
        raise PartitionError(f"unexpected SHOW CREATE TABLE output for {table}: {show_create[:60]!r}")
    body = _PARTITION_CLAUSE.sub("", show_create[len(head):])
    return f"CREATE TABLE {_q(holding)} {body}"


_PARTITION_CLAUSE = re.compile(r"\s*(/\*!\d+\s*)?PARTITION BY .*\Z", re.S)


def exchange_sql(table: str, partition: str, holding: str, dialect: str) -> str:
    """Swap a partition's rows with the (empty) holding table: a metadata change.

    MySQL 8 may skip validating the holding table's rows (it is empty); MariaDB 10.11 has no
    ``WITHOUT VALIDATION`` (11.4 added it) and validates the empty table in no time.
    """
    _check_dialect(dialect)
    tail = " WITHOUT VALIDATION" if dialect == "mysql8" else ""
    return f"ALTER TABLE {_q(table)} EXCHANGE PARTITION {_q(partition)} WITH TABLE {_q(holding)}{tail}"


def remove_sql(table: str) -> str:
    return f"ALTER TABLE {_q(table)} REMOVE PARTITIONING"


def _check_dialect(dialect: str) -> None:
    if dialect not in DIALECTS:
        raise PartitionError(f"unknown SQL dialect {dialect!r}; one of {', '.join(DIALECTS)}")


def pt_osc_command(database: str, table: str, alter: str) -> str:
    """The pt-online-schema-change invocation for the same change (the ALTER without its table)."""
    clause = alter.split(" ALGORITHM=COPY, LOCK=SHARED ", 1)[-1].replace("\n  ", " ").replace("\n", " ")
    return (f"pt-online-schema-change --alter \"{clause}\" D={database},t={table} "
            "--chunk-index Facts_creationDate_idx --dry-run   # then --execute")
