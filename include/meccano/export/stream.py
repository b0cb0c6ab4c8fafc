"""Read one or more day partitions inside one consistent snapshot, as blocks of CSV bytes per day.

On MySQL/MariaDB the server joins each row's raw values (see :mod:`meccano.export.csvformat`) and
the rows are streamed through the low-level MySQLdb result (``query`` + ``use_result`` +
``fetch_row``) with no converters, so Python receives the UTF-8 bytes as they came off the wire
(the session's result character set is utf8mb4) and turns a batch into CSV without decoding it;
memory stays flat however large the day is. The rows are counted per second as they stream (the
purge chunks' histogram), and several days are exported by one pass over the table, each row
routed to its day's files. The time key of a row is the tail of its own line when the date
column is the table's last (``'YYYY-MM-DD HH:MM:SS'``, as ``TIMESTAMP`` and ``DATETIME`` columns
print): counting those tails in C costs the client less than a per-row ``TO_SECONDS`` costs the
server (about a fifth of its CPU for the read). Other layouts, and the exact path, have the server
add ``TO_SECONDS(column)``. On SQLite (the embedded demo) a plain cursor with ``fetchmany`` is used
and Python formats the lines in the same dialect.
"""

from __future__ import annotations

import queue
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import groupby
from operator import itemgetter
from typing import Any, NamedTuple, TypeVar

from meccano.export.csvformat import AmbiguousValue, csv_block, csv_fields, fields_expr, format_row, ts_text
from meccano.iotdb.db import Iotdb

BATCH_ROWS = 10_000
READ_AHEAD = 4  # batches fetched ahead of the formatting (about 0.6 MB each)
T = TypeVar("T")
Range = tuple[str, str]


class Block(NamedTuple):
    """Rows of one day as read: their CSV lines and how many fell in each second."""

    day: str  # 'YYYY-MM-DD'
    data: bytes  # UTF-8 CSV lines, each ending in a newline
    rows: int
    seconds: Counter  # second of the day (0..86,399) -> rows


SECONDS_PER_DAY = 86_400
_ORDINAL_OFFSET = 365  # MySQL's TO_DAYS(d) == Python's d.toordinal() + 365


def to_seconds(value: Any) -> int:
    """MySQL's ``TO_SECONDS`` of a date value (a datetime or its text): whole seconds since year 0."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value)[:19])
    return ((moment.toordinal() + _ORDINAL_OFFSET) * SECONDS_PER_DAY + moment.hour * 3600 + moment.minute * 60
            + moment.second)


def day_text(day_number: int) -> str:
    """``'YYYY-MM-DD'`` of ``TO_SECONDS // 86400`` (MySQL's ``TO_DAYS``)."""
    return date.fromordinal(day_number - _ORDINAL_OFFSET).isoformat()


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "string", "number" or "datetime"
    type: str
    nullable: bool = True


def _kind(type_name: str) -> str:
    upper = type_name.upper()
    if any(k in upper for k in ("CHAR", "TEXT", "ENUM", "JSON", "CLOB")):
        return "string"
    if any(k in upper for k in ("DATE", "TIME")):
        return "datetime"
    return "number"


def table_columns(db: Iotdb, table: str) -> list[Column]:
    from sqlalchemy import inspect

    insp = inspect(db.engine)
    if table not in insp.get_table_names():
        raise LookupError(f"table {table!r} does not exist in the IOTDB; fix config.yml export.tables "
                          "or run `python -m meccano db upgrade`")
    return [Column(c["name"], _kind(str(c["type"])), str(c["type"]), bool(c.get("nullable", True)))
            for c in insp.get_columns(table)]


def date_index(db: Iotdb, table: str, column: str) -> str | None:
    """An index whose first column is ``column`` (the export's range scans use it), or None."""
    from sqlalchemy import inspect

    for index in inspect(db.engine).get_indexes(table):
        if index["column_names"] and index["column_names"][0] == column:
            return str(index["name"])
    return None


def access_hint(index: str | None, full_scan: bool) -> str:
    """The index hint of the rows query: read the whole table, or only the date range through ``index``.

    A range read through a secondary index costs an extra B-tree lookup per row (about 2 us here,
    against 1.3 us per row for a full scan), so when the exported days hold most of the table one
    sequential pass is cheaper. MariaDB's own choice was wrong both ways here (a full scan for one day
    of five), so the caller decides from the share of the table it exports.
    """
    if not index:
        return ""
    return f" IGNORE INDEX ({index})" if full_scan else f" FORCE INDEX ({index})"


def merged(ranges: Sequence[Range]) -> list[Range]:
    """``ranges`` sorted, with touching or overlapping ones joined."""
    out: list[Range] = []
    for lower, upper in sorted(ranges):
        if out and lower <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], upper))
        else:
            out.append((lower, upper))
    return out


TimeKey = Callable[[Any], Any]  # a batch item -> its raw time key (C-level, e.g. an itemgetter)
DecodeKey = Callable[[Any], tuple[str, int]]  # a raw time key -> (day 'YYYY-MM-DD', second of the day)

_TEXT_KEY = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_TEXT_KEY_WIDTH = 19  # 'YYYY-MM-DD HH:MM:SS'
_ZERO = ord("0")


def decode_text_key(key: bytes) -> tuple[str, int]:
    """``(day, second of the day)`` of a ``b'YYYY-MM-DD HH:MM:SS'`` line tail.

    Raises :class:`AmbiguousValue` when the tail is not such a date (the caller then reads the
    rows the exact way, with the server's ``TO_SECONDS``)."""
    if not _TEXT_KEY.fullmatch(key):
        raise AmbiguousValue(f"a line does not end in its date ({key!r})")
    hours, minutes, seconds = (key[i] * 10 + key[i + 1] - 11 * _ZERO for i in (11, 14, 17))  # digit pairs
    return key[:10].decode("ascii"), hours * 3600 + minutes * 60 + seconds


def decode_seconds_key(key: Any) -> tuple[str, int]:
    """``(day, second of the day)`` of a ``TO_SECONDS`` value (int, or its digits as bytes)."""
    days, second = divmod(int(key), SECONDS_PER_DAY)
    return day_text(days), second


def text_key_of(columns: Sequence[Column], column: str) -> bool:
    """True when each fast-path line ends in the row's date as ``'YYYY-MM-DD HH:MM:SS'``: ``column`` is
    the last column and a ``TIMESTAMP`` or ``DATETIME`` without fractional seconds."""
    last = columns[-1]
    return last.name == column and last.type.upper() in ("TIMESTAMP", "DATETIME")


def _by_day(items: Sequence[Any], to_csv: Callable[[Sequence[Any]], bytes], key_of: TimeKey,
            decode: DecodeKey) -> Iterator[Block]:
    """Split a fetched batch into blocks of one day each (usually the whole batch).

    The per-second counts are taken here, in C (``Counter`` over ``key_of``), from the same items
    that are exported, so the histogram can never disagree with the files; only the distinct keys
    (a few hundred a batch) are decoded in Python.
    """
    raw = Counter(map(key_of, items))
    decoded = {key: decode(key) for key in raw}
    days = {day for day, _ in decoded.values()}
    if len(days) == 1:
        yield Block(days.pop(), to_csv(items), len(items), _per_second(raw, decoded))
        return
    for day, group in groupby(items, key=lambda item: decoded[key_of(item)][0]):
        part = list(group)
        yield Block(day, to_csv(part), len(part), _per_second(Counter(map(key_of, part)), decoded))


def _per_second(raw: Counter, decoded: dict[Any, tuple[str, int]]) -> Counter:
    seconds: Counter = Counter()
    for key, n in raw.items():
        seconds[decoded[key][1]] += n
    return seconds


def read_ahead(batches: Iterator[T], depth: int = READ_AHEAD) -> Iterator[T]:
    """``batches``, produced by a helper thread up to ``depth`` ahead of the consumer.

    The server's next rows come off the socket while the caller formats the last ones (MySQLdb
    releases the GIL while it waits for a row): without it the server stalled whenever the reader
    was busy formatting. Errors of the source reach the consumer; a consumer that stops early
    stops the source and waits until its clean-up (``finally``) has run, so the connection is
    free again when this generator is closed.
    """
    slots: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in batches:
                if stop.is_set():
                    break
                slots.put((True, item))
            slots.put((False, None))
        except BaseException as exc:  # handed to the consumer, which raises it
            slots.put((False, exc))
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: S110 - the consumer already has the error that ended the read, or none
                    pass

    worker = threading.Thread(target=produce, name="meccano-export-fetch", daemon=True)
    worker.start()
    try:
        while True:
            more, item = slots.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # keep taking so that a blocked put() sees the stop
            try:
                slots.get(timeout=0.05)
            except queue.Empty:
                pass
        worker.join()


def _joined_lines(rows: Sequence[Sequence[Any]]) -> bytes:
    return b"".join([row[0] for row in rows])


class Snapshot:
    """A read-only consistent view of the IOTDB for one export pass (one or more days)."""

    def __init__(self, db: Iotdb) -> None:
        self.db = db
        self.mysql = db.dialect == "mysql"
        self.mark = "%s" if self.mysql else "?"
        self.con: Any = None
        self._readers: list[Iterator[Any]] = []  # read-ahead threads on this connection

    def __enter__(self) -> Snapshot:
        if self.mysql:
            assert self.db.hook is not None
            self.con = self.db.hook.get_conn()
            self.con.autocommit(False)
            self.con.set_character_set("utf8mb4")  # the streamed bytes are UTF-8 whatever the connection's default
            cur = self.con.cursor()
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("SET SESSION net_write_timeout = 3600")
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            cur.close()
        else:
            import sqlite3

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
        # MySQL: the server formats the second (the same text as ts_text); building 86,400
        # datetime objects per day only to format them again cost ~20% of a day's export.
        shown = f"CAST({column} AS CHAR)" if self.mysql else column
        cur.execute(f"SELECT {shown}, COUNT(*) FROM {table} WHERE {where} GROUP BY {column} ORDER BY {column}",
                    params)
        rows = [(ts_text(ts), int(n)) for ts, n in cur.fetchall()]
        cur.close()
        return rows

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
               batch: int = BATCH_ROWS, hint: str = "", exact: bool = False) -> Iterator[Block]:
        """The rows in ``ranges`` as :class:`Block` s of up to ``batch`` rows.

        Rows come in the table's order (no sort); a batch spanning several days is split by day.
        On MySQL the server joins each row's values (see :mod:`meccano.export.csvformat`) and
        MySQLdb's low-level result hands them over undecoded; ``hint`` is the index hint from
        :func:`access_hint`. Each row's second comes from the tail of its line when
        :func:`text_key_of` holds, otherwise from a ``TO_SECONDS`` column the server adds. The fast
        path raises :class:`AmbiguousValue` when a value holds one of its separators (or a line does
        not end in its date); ``exact=True`` then reads the raw columns and quotes them in Python.
        """
        if not self.mysql:
            for rows in self._sqlite_rows(table, column, columns, ranges, batch):
                yield from _by_day(rows, _joined_lines, itemgetter(-1), decode_seconds_key)
            return
        nullable = [c.nullable for c in columns]
        if not exact and text_key_of(columns, column):
            values = fields_expr([c.name for c in columns], nullable, [c.kind == "string" for c in columns])
            tail = itemgetter(slice(-_TEXT_KEY_WIDTH, None))
            first = itemgetter(0)

            def lines_csv(lines: Sequence[bytes]) -> bytes:
                return csv_block(lines, nullable)

            for rows in self._read_ahead(self._raw_rows(f"SELECT {values} FROM {table}{hint}", column, ranges,
                                                        batch)):
                yield from _by_day(list(map(first, rows)), lines_csv, tail, decode_text_key)
            return
        if exact:
            values = ", ".join(c.name for c in columns)

            def to_csv(rows: Sequence[Sequence[Any]]) -> bytes:
                return b"".join([csv_fields(row[:-1], nullable) for row in rows])
        else:
            values = fields_expr([c.name for c in columns], nullable, [c.kind == "string" for c in columns])

            def to_csv(rows: Sequence[Sequence[Any]]) -> bytes:
                return csv_block([row[0] for row in rows], nullable)
        # TO_SECONDS: the cheapest per-row time key the server computes (a CAST to text cost ~20 % of the read)
        for rows in self._read_ahead(self._raw_rows(f"SELECT {values}, TO_SECONDS({column}) FROM {table}{hint}",
                                                    column, ranges, batch)):
            yield from _by_day(rows, to_csv, itemgetter(-1), decode_seconds_key)

    def _read_ahead(self, batches: Iterator[T]) -> Iterator[T]:
        reader = read_ahead(batches)
        self._readers.append(reader)
        return reader

    def _raw_rows(self, select: str, column: str, ranges: Sequence[Range], batch: int) -> Iterator[tuple]:
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
        for rows in self._raw_rows(f"SELECT {values} FROM {table}", column, ranges, batch):
            yield [csv_fields(row, nullable).decode("utf-8")[:-1] for row in rows]
