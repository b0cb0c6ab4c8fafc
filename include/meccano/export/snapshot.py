"""Read the IOTDB for the export: a table's columns and date index, and one or more days inside one
consistent snapshot, as blocks of CSV bytes per day.

On MySQL/MariaDB the server joins each row's raw values (see :mod:`meccano.export.csvformat`) and
the rows are streamed through the low-level MySQLdb result (``query`` + ``use_result`` +
``fetch_row``) with no converters, so Python receives the UTF-8 bytes as they came off the wire
(the session's result character set is utf8mb4) and turns a batch into CSV without decoding it;
memory stays flat however large the day is. The rows are counted per second as they stream (the
purge chunks' histogram), and several days are exported by one pass over the table, each row
routed to its day's files. The time key of a row is the tail of its own line when the date
column is the table's last (``'YYYY-MM-DD HH:MM:SS'``, as ``TIMESTAMP`` and ``DATETIME`` columns
print): counting those tails in C costs the client less than a per-row ``TO_SECONDS`` costs the
server (a large share of its CPU for the read). Other layouts, and the exact path, have the server
add ``TO_SECONDS(column)``. On SQLite (the embedded demo) a plain cursor with ``fetchmany`` is used
and Python formats the lines in the same dialect.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Iterator, Sequence
from operator import itemgetter
from typing import Any, TypeVar

from meccano.errors import ExportError, MissingTable
from meccano.export.csvformat import csv_block, csv_fields, fields_expr, format_row, ts_text
from meccano.export.model import Column, Range
from meccano.export.stream import (
    TEXT_KEY_WIDTH,
    Block,
    by_day,
    decode_seconds_key,
    decode_text_key,
    read_ahead,
    text_key_of,
    to_seconds,
)
from meccano.iotdb.db import Iotdb

BATCH_ROWS = 10_000
T = TypeVar("T")


def _kind(type_name: str) -> str:
    upper = type_name.upper()
    if any(k in upper for k in ("CHAR", "TEXT", "ENUM", "JSON", "CLOB")):
        return "string"
    if any(k in upper for k in ("DATE", "TIME")):
        return "datetime"
    return "number"


def table_columns(db: Iotdb, table: str) -> list[Column]:
    from sqlalchemy import inspect  # lazy: sqlalchemy costs 146 ms at import (python -X importtime)

    insp = inspect(db.engine)
    if table not in insp.get_table_names():
        raise MissingTable(f"table {table!r} does not exist in the IOTDB; fix config.yml export.tables "
                          "or run `python -m meccano db upgrade`")
    return [Column(c["name"], _kind(str(c["type"])), str(c["type"]), bool(c.get("nullable", True)))
            for c in insp.get_columns(table)]


def date_index(db: Iotdb, table: str, column: str) -> str | None:
    """An index whose first column is ``column`` (the export's range scans use it), or None."""
    from sqlalchemy import inspect  # lazy: sqlalchemy costs 146 ms at import (python -X importtime)

    for index in inspect(db.engine).get_indexes(table):
        if index["column_names"] and index["column_names"][0] == column:
            return str(index["name"])
    return None


def checked_columns(db: Iotdb, table: str, date_column: str) -> list[Column]:
    """The table's columns; a clear error when the configured date column is not one of them."""
    columns = table_columns(db, table)
    if date_column not in {c.name for c in columns}:
        raise ExportError(f"{table} has no column {date_column!r}; fix config.yml export.tables dateColumn")
    return columns


def access_hint(index: str | None, full_scan: bool) -> str:
    """The index hint of the rows query: read the whole table, or only the date range through ``index``.

    A range read through a secondary index costs an extra B-tree lookup per row (measurably more per
    row than a full scan), so when the exported days hold most of the table one sequential pass is
    cheaper. MariaDB's own choice was wrong both ways here (a full scan for one day of five), so the
    caller decides from the share of the table it exports.
    """
    if not index:
        return ""
    return f" IGNORE INDEX ({index})" if full_scan else f" FORCE INDEX ({index})"


UTC_NAMES = ("UTC", "GMT", "Etc/UTC", "Etc/GMT", "Z", "Universal", "Zulu")


def utc_system_zone(session_zone: str, system_zone: str) -> bool:
    """True when the session's zone is ``SYSTEM`` and the server's system zone is UTC: then ``'+00:00'`` is the
    same zone, and MariaDB/MySQL compare and format ``TIMESTAMP`` values in it without asking the OS for every row
    (``SYSTEM`` does; a day's range count took 1.36-1.49 s against 0.99-1.02 s for 5 M rows, bench/README.md)."""
    return session_zone == "SYSTEM" and system_zone in UTC_NAMES


def merged(ranges: Sequence[Range]) -> list[Range]:
    """``ranges`` sorted, with touching or overlapping ones joined."""
    out: list[Range] = []
    for lower, upper in sorted(ranges):
        if out and lower <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], upper))
        else:
            out.append((lower, upper))
    return out


def _joined_lines(rows: Sequence[Sequence[Any]]) -> bytes:
    return b"".join([row[0] for row in rows])


COUNT_BATCH = 200  # ranges counted by one statement of range_counts


class Snapshot:
    """A read-only consistent view of the IOTDB for one export pass (one or more days)."""

    def __init__(self, db: Iotdb, batch: int = BATCH_ROWS) -> None:
        """``batch``: rows per fetch of :meth:`blocks`."""
        self.db, self.batch = db, batch
        self.mysql = db.dialect == "mysql"
        self.mark = "%s" if self.mysql else "?"
        self.con: Any = None
        self._readers: list[Generator[Any, None, None]] = []  # read-ahead threads on this connection

    def __enter__(self) -> Snapshot:
        if self.mysql:
            assert self.db.hook is not None
            self.con = self.db.hook.get_conn()
            self.con.autocommit(False)
            self.con.set_character_set("utf8mb4")  # the streamed bytes are UTF-8 whatever the connection's default
            cur = self.con.cursor()
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("SET SESSION net_write_timeout = 3600")
            cur.execute("SELECT @@session.time_zone, @@system_time_zone")
            if utc_system_zone(*cur.fetchone()):
                cur.execute("SET SESSION time_zone = '+00:00'")  # the same zone, without the OS per row
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            cur.close()
        else:

            self.con = sqlite3.connect(self.db.sqlite_path, timeout=30, isolation_level=None)
            self.con.execute("BEGIN")
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        for reader in self._readers:  # no thread may still read from the connection being closed
            reader.close()
        try:
            self.con.rollback()
        except Exception:
            if exc_type is None:
                raise
            # after a failure mid-stream the unread result refuses the rollback; closing the
            # connection ends the read-only transaction anyway, and the original error is kept
        finally:
            self.con.close()

    def _where(self, column: str, ranges: Sequence[Range]) -> tuple[str, list[str]]:
        ranges = merged(ranges)  # consecutive days: one range test per row instead of one per day
        clause = " OR ".join(f"({column} >= {self.mark} AND {column} < {self.mark})" for _ in ranges)
        return clause, [v for r in ranges for v in r]

    def histogram(self, table: str, column: str, ranges: Sequence[Range]) -> list[tuple[str, int]]:
        """Rows per distinct date value, ascending; an index-only scan (the reconcile mode's view of a day)."""
        where, params = self._where(column, ranges)
        cur = self.con.cursor()
        # MySQL: the server formats the second (the same text as ts_text); building a datetime object per
        # second of the day only to format it again was a noticeable share of a day's export.
        shown = f"CAST({column} AS CHAR)" if self.mysql else column
        cur.execute(f"SELECT {shown}, COUNT(*) FROM {table} WHERE {where} GROUP BY {column} ORDER BY {column}",
                    params)
        rows = [(ts_text(ts), int(n)) for ts, n in cur.fetchall()]
        cur.close()
        return rows

    def range_counts(self, table: str, column: str, ranges: Sequence[Range]) -> list[int]:
        """Rows in each ``[from, to)`` of ``ranges``, in order: one index range count per range, up to
        ``COUNT_BATCH`` of them per statement. Cheaper than :meth:`histogram` when only the ranges' totals
        matter (verify): no row per second to send, convert and place (0.24 s against 0.28-0.32 s of server time
        for a day of 1 M rows in 50 ranges, and no Python work per second)."""
        counts: list[int] = []
        cur = self.con.cursor()
        try:
            for first in range(0, len(ranges), COUNT_BATCH):
                batch = ranges[first:first + COUNT_BATCH]
                sql = " UNION ALL ".join(
                    f"SELECT {n}, COUNT(*) FROM {table} WHERE {column} >= {self.mark} AND {column} < {self.mark}"
                    for n in range(len(batch)))
                cur.execute(sql, [v for r in batch for v in r])
                found = {int(n): int(rows) for n, rows in cur.fetchall()}
                counts += [found[n] for n in range(len(batch))]
        finally:
            cur.close()
        return counts

    def estimate_rows(self, table: str, column: str, ranges: Sequence[Range], index: str | None) -> int | None:
        """Rows in ``ranges``: the optimizer's estimate through ``index`` on MySQL (index dives, no scan),
        an exact count on SQLite; None when there is no index to estimate with."""
        where, params = self._where(column, ranges)
        cur = self.con.cursor()
        try:
            if not self.mysql:
                cur.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", params)
                return int(cur.fetchone()[0])
            if not index:
                return None
            cur.execute(f"EXPLAIN SELECT 1 FROM {table} FORCE INDEX ({index}) WHERE {where}", params)
            names = [d[0].lower() for d in cur.description]
            row = cur.fetchone()
            return int(row[names.index("rows")]) if row and row[names.index("rows")] is not None else None
        finally:
            cur.close()

    def table_rows(self, table: str) -> int | None:
        """The server's estimate of the table's rows (InnoDB statistics; no scan), None when unknown."""
        if not self.mysql:
            return None
        cur = self.con.cursor()
        cur.execute("SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                    "AND TABLE_NAME = %s", (table,))
        row = cur.fetchone()
        cur.close()
        return int(row[0]) if row and row[0] is not None else None

    def blocks(self, table: str, column: str, columns: Sequence[Column], ranges: Sequence[Range],
               hint: str = "", exact: bool = False) -> Iterator[Block]:
        """The rows in ``ranges`` as :class:`Block` s of up to ``self.batch`` rows.

        Rows come in the table's order (no sort); a batch spanning several days is split by day.
        On MySQL the server joins each row's values (see :mod:`meccano.export.csvformat`) and
        MySQLdb's low-level result hands them over undecoded; ``hint`` is the index hint from
        :func:`access_hint`. Each row's second comes from the tail of its line when
        :func:`text_key_of` holds, otherwise from a ``TO_SECONDS`` column the server adds. The fast
        path raises :class:`AmbiguousValue` when a value holds one of its separators (or a line does
        not end in its date); ``exact=True`` then reads the raw columns and quotes them in Python.
        """
        batch = self.batch
        if not self.mysql:
            for rows in self._sqlite_rows(table, column, columns, ranges, batch):
                yield from by_day(rows, _joined_lines, itemgetter(-1), decode_seconds_key)
            return
        nullable = [c.nullable for c in columns]
        if not exact and text_key_of(columns, column):
            values = fields_expr([c.name for c in columns], nullable, [c.kind == "string" for c in columns])
            tail = itemgetter(slice(-TEXT_KEY_WIDTH, None))
            first = itemgetter(0)

            def lines_csv(lines: Sequence[bytes]) -> bytes:
                return csv_block(lines, nullable)

            for raw in self._read_ahead(self._raw_rows(f"SELECT {values} FROM {table}{hint}", column, ranges,
                                                       batch)):
                yield from by_day(list(map(first, raw)), lines_csv, tail, decode_text_key)
            return
        if exact:
            values = ", ".join(c.name for c in columns)

            def to_csv(rows: Sequence[Sequence[Any]]) -> bytes:
                return b"".join([csv_fields(row[:-1], nullable) for row in rows])
        else:
            values = fields_expr([c.name for c in columns], nullable, [c.kind == "string" for c in columns])

            def to_csv(rows: Sequence[Sequence[Any]]) -> bytes:
                return csv_block([row[0] for row in rows], nullable)
        # TO_SECONDS: the cheapest per-row time key the server computes (a CAST to text cost a noticeable share)
        for raw in self._read_ahead(self._raw_rows(f"SELECT {values}, TO_SECONDS({column}) FROM {table}{hint}",
                                                   column, ranges, batch)):
            yield from by_day(raw, to_csv, itemgetter(-1), decode_seconds_key)

    def _read_ahead(self, batches: Iterator[T]) -> Iterator[T]:
        reader = read_ahead(batches)
        self._readers.append(reader)
        return reader

    def _raw_rows(self, select: str, column: str, ranges: Sequence[Range], batch: int) -> Iterator[tuple[Any, ...]]:
        """Batches of rows of ``select`` + the ranges' WHERE, every value as the server's raw bytes."""
        where, params = self._where(column, ranges)
        sql = f"{select} WHERE {where}".replace("%s", "{}")
        self.con.query(sql.format(*(self.con.literal(p).decode("ascii") for p in params)))
        converters, self.con.converter = self.con.converter, {}  # no conversion: every value as raw bytes
        try:
            result = self.con.use_result()
        finally:
            self.con.converter = converters
        done = False
        try:
            while rows := result.fetch_row(batch):
                yield rows
            done = True
        finally:
            if not done:  # an unread streamed result blocks the connection: drain it
                while result.fetch_row(batch):
                    pass

    def _sqlite_rows(self, table: str, column: str, columns: Sequence[Column], ranges: Sequence[Range],
                     batch: int) -> Iterator[list[tuple[bytes, int]]]:
        where, params = self._where(column, ranges)
        names = ", ".join(c.name for c in columns)
        kinds, nullable = [c.kind for c in columns], [c.nullable for c in columns]
        at = [c.name for c in columns].index(column)
        cur = self.con.cursor()
        cur.execute(f"SELECT {names} FROM {table} WHERE {where}", params)
        while rows := cur.fetchmany(batch):
            yield [((format_row(r, kinds, nullable) + "\n").encode("utf-8"), to_seconds(r[at])) for r in rows]
        cur.close()

    def lines(self, table: str, column: str, columns: Sequence[Column], ranges: Sequence[Range],
              batch: int = BATCH_ROWS) -> Iterator[list[str]]:
        """The CSV lines (text, no newline) of the rows in ``ranges``, ``batch`` at a time (no order)."""
        if not self.mysql:
            for rows in self._sqlite_rows(table, column, columns, ranges, batch):
                yield [line.decode("utf-8")[:-1] for line, _ in rows]
            return
        values, nullable = ", ".join(c.name for c in columns), [c.nullable for c in columns]
        for raw in self._raw_rows(f"SELECT {values} FROM {table}", column, ranges, batch):
            yield [csv_fields(row, nullable).decode("utf-8")[:-1] for row in raw]
