"""Read one partition inside one consistent snapshot: a per-second histogram, then the rows.

On MySQL/MariaDB the server builds each CSV line, newline included, as UTF-8 bytes
(``CAST(CONCAT(CONVERT(CONCAT_WS(...) USING utf8mb4), CHAR(10 USING utf8mb4)) AS BINARY)``) and the rows are
streamed through the low-level MySQLdb result (``query`` + ``use_result`` + ``fetch_row``), so
Python neither decodes nor encodes a line and a batch is one ``b"".join``; memory stays flat
however large the day is. On SQLite (the embedded demo) a plain cursor with ``fetchmany`` is
used and Python formats the lines the same way. The histogram and the rows are read in the same
REPEATABLE READ snapshot, so they always agree with each other.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from meccano.iotdb.db import Iotdb

BATCH_ROWS = 10_000
Range = tuple[str, str]


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


def ts_text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def _mysql_line_expr(columns: Sequence[Column]) -> str:
    """The text CSV line of a row (no newline), built by the server."""
    parts = []
    for c in columns:  # NOT NULL columns skip the NULL test: less work per row for the server
        if c.kind == "string":
            quoted = f"CONCAT('\"', REPLACE({c.name}, '\"', '\"\"'), '\"')"
            parts.append(f"IF({c.name} IS NULL, '', {quoted})" if c.nullable else quoted)
        else:
            parts.append(f"IFNULL({c.name}, '')" if c.nullable else c.name)
    return "CONCAT_WS(','," + ", ".join(parts) + ")"


def _mysql_bytes_expr(columns: Sequence[Column]) -> str:
    """The CSV line with its newline as UTF-8 bytes: a binary column MySQLdb hands over undecoded."""
    return f"CAST(CONCAT(CONVERT({_mysql_line_expr(columns)} USING utf8mb4), CHAR(10 USING utf8mb4)) AS BINARY)"


def format_row(row: Sequence[Any], columns: Sequence[Column]) -> str:
    """The CSV line of a row, exactly as the MySQL expression builds it."""
    out = []
    for value, c in zip(row, columns, strict=True):
        if value is None:
            out.append("")
        elif c.kind == "string":
            out.append('"' + str(value).replace('"', '""') + '"')
        elif c.kind == "datetime":
            out.append(ts_text(value))
        else:
            out.append(str(value))
    return ",".join(out)


class Snapshot:
    """A read-only consistent view of the IOTDB for one partition's export."""

    def __init__(self, db: Iotdb) -> None:
        self.db = db
        self.mysql = db.dialect == "mysql"
        self.mark = "%s" if self.mysql else "?"
        self.con: Any = None

    def __enter__(self) -> Snapshot:
        if self.mysql:
            assert self.db.hook is not None
            self.con = self.db.hook.get_conn()
            self.con.autocommit(False)
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
        clause = " OR ".join(f"({column} >= {self.mark} AND {column} < {self.mark})" for _ in ranges)
        return clause, [v for r in ranges for v in r]

    def histogram(self, table: str, column: str, ranges: Sequence[Range]) -> list[tuple[str, int]]:
        """Rows per distinct date value (per second), ascending; an index-only scan."""
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

    def blocks(self, table: str, column: str, columns: Sequence[Column], ranges: Sequence[Range],
               batch: int = BATCH_ROWS, index: str | None = None) -> Iterator[tuple[bytes, int]]:
        """``(UTF-8 CSV lines each ending in a newline, row count)`` per ``batch`` rows (no order).

        The fast path of a full export: on MySQL the server builds the bytes and MySQLdb's
        low-level result streams them without a cursor object or any decoding. ``index`` (the
        date column's index) is forced: with a day being a large share of the table MariaDB
        picks a full scan, which is slower than the range (rows are inserted in date order).
        """
        if not self.mysql:
            for lines in self.lines(table, column, columns, ranges, batch):
                yield ("\n".join(lines) + "\n").encode("utf-8"), len(lines)
            return
        where, params = self._where(column, ranges)
        hint = f" FORCE INDEX ({index})" if index else ""
        sql = f"SELECT {_mysql_bytes_expr(columns)} FROM {table}{hint} WHERE {where}".replace("%s", "{}")
        self.con.query(sql.format(*(self.con.literal(p).decode("ascii") for p in params)))
        result = self.con.use_result()
        done = False
        try:
            while rows := result.fetch_row(batch):
                yield b"".join([r[0] for r in rows]), len(rows)
            done = True
        finally:
            if not done:  # an unread streamed result blocks the connection: drain it
                while result.fetch_row(batch):
                    pass

    def lines(self, table: str, column: str, columns: Sequence[Column], ranges: Sequence[Range],
              batch: int = BATCH_ROWS) -> Iterator[list[str]]:
        """The CSV lines (text, no newline) of the rows in ``ranges``, ``batch`` at a time (no order)."""
        where, params = self._where(column, ranges)
        if self.mysql:
            from MySQLdb.cursors import SSCursor

            cur = self.con.cursor(SSCursor)
            cur.execute(f"SELECT {_mysql_line_expr(columns)} FROM {table} WHERE {where}", params)
            try:
                while True:
                    rows = cur.fetchmany(batch)
                    if not rows:
                        break
                    yield [r[0] for r in rows]
            finally:
                cur.close()
        else:
            names = ", ".join(c.name for c in columns)
            cur = self.con.cursor()
            cur.execute(f"SELECT {names} FROM {table} WHERE {where}", params)
            while True:
                rows = cur.fetchmany(batch)
                if not rows:
                    break
                yield [format_row(r, columns) for r in rows]
            cur.close()
