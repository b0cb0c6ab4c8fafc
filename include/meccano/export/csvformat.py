"""The CSV format (``export.format: csv``): its dialect, the fast way MySQL rows become it, its gzip
part files, their names, and how stored parts are read back.

Dialect (RFC 4180, what Spark, Athena and Python's ``csv`` read by default): comma-separated,
``\\n`` line ends, no header; a field is quoted with ``"`` (inner quotes doubled) only when it
holds a comma, a quote, CR or LF; NULL is an empty unquoted field, and an empty string is
written ``""`` in a nullable column (to tell it from NULL), as an empty field in a NOT NULL one.

Fast path: the server joins each row's values with the ASCII unit separator (``CONCAT_WS`` of
the raw columns, NULL as the ASCII record separator), which costs it no more than sending the
columns (``SELECT *``); every quoting decision is then made per batch in C: when a batch holds
no comma, quote, CR, record separator or empty field, and exactly the expected number of unit
separators and line ends, it becomes CSV by one ``bytes.replace``. Only the rare batch that
fails the test is formatted row by row. A value that itself contains a unit or record
separator makes a row ambiguous: :class:`AmbiguousValue` tells the caller to read the
days again through :func:`csv_fields`, the exact (slower) path. Server-side quoting
(``REPLACE`` and ``CONCAT`` per string column) cost measurably more server CPU per row.

Part files: gzip (zlib-ng's deflate, which releases the GIL and gives files as small as ``gzip -6`` at a
fraction of its CPU; see ``bench/README.md``). The gzip header carries no name and no time, so the same
rows give the same bytes.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from zlib_ng import zlib_ng

from meccano.errors import AmbiguousValue
from meccano.export.model import Column, FileFormat
from meccano.export.partfile import HashingFile, PartFile

US = b"\x1f"  # field separator of the fast path
RS = b"\x1e"  # NULL marker of the fast path (nullable columns)
GS = b"\x1d"  # empty-string marker of the fast path (nullable string columns)
_SPECIAL = (b",", b'"', b"\r", b"\n")
# the manifest's description of gzip CSV parts
LAYOUT = {"format": FileFormat.CSV.value, "compression": "gzip", "header": False, "delimiter": ",", "quote": '"'}
EXTENSION = ".csv.gz"
GZIP_WBITS = 31  # deflate with a gzip header and trailer

def fields_expr(names: Sequence[str], nullable: Sequence[bool], strings: Sequence[bool]) -> str:
    """The server expression joining a row's raw values for :func:`csv_block`."""
    parts = []
    for name, null, string in zip(names, nullable, strings, strict=True):
        if null and string:
            parts.append(f"IFNULL(IF({name} = '', CHAR(29 USING utf8mb4), {name}), CHAR(30 USING utf8mb4))")
        elif null:
            parts.append(f"IFNULL({name}, CHAR(30 USING utf8mb4))")
        else:
            parts.append(name)
    return "CONCAT_WS(CHAR(31 USING utf8mb4), " + ", ".join(parts) + ")"


def _plain(data: bytes, rows: int, width: int) -> bool:
    """True when ``data`` (rows joined by LF, LF-terminated) needs no quoting and holds no NULL.

    Single-byte membership tests are ``memchr`` fast; the two counts prove that no value holds
    a separator or a line end. An empty field can only be a NOT NULL column's empty string
    (a nullable column's NULL and empty string arrive as RS and GS), written as it is.
    """
    if b"," in data or b'"' in data or b"\r" in data or RS in data or GS in data:
        return False
    return data.count(US) == rows * (width - 1) and data.count(b"\n") == rows


def csv_block(lines: Sequence[bytes], nullable: Sequence[bool]) -> bytes:
    """CSV bytes of fast-path rows (their values joined by US); raises :class:`AmbiguousValue`."""
    data = b"\n".join(lines) + b"\n"
    if _plain(data, len(lines), len(nullable)):
        return data.replace(US, b",")
    return b"".join([_csv_line(line, nullable) for line in lines])


def _csv_line(line: bytes, nullable: Sequence[bool]) -> bytes:
    fields = line.split(US)
    if len(fields) != len(nullable):
        raise AmbiguousValue("a value contains the ASCII unit separator (0x1F)")
    values: list[bytes | None] = []
    for field, null in zip(fields, nullable, strict=True):
        if not null:  # no markers in a NOT NULL column: the value as it is
            values.append(field)
        elif field == RS:
            values.append(None)
        elif field == GS:
            values.append(b"")
        elif RS in field or GS in field:
            raise AmbiguousValue("a value of a nullable column contains the ASCII record or group separator "
                                 "(0x1E, 0x1D)")
        else:
            values.append(field)
    return csv_fields(values, nullable)


def _quoted(field: bytes, nullable: bool) -> bytes:
    if field and not any(ch in field for ch in _SPECIAL):
        return field
    if not field and not nullable:
        return field
    return b'"' + field.replace(b'"', b'""') + b'"'


def csv_fields(values: Sequence[bytes | None], nullable: Sequence[bool]) -> bytes:
    """The CSV line (with LF) of one row's raw values as the server sends them (None is NULL)."""
    return b",".join([b"" if v is None else _quoted(v, null) for v, null in zip(values, nullable, strict=True)]) \
        + b"\n"


def ts_text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def format_row(row: Sequence[Any], kinds: Sequence[str], nullable: Sequence[bool]) -> str:
    """The CSV line (no LF) of a row of Python values (SQLite), the same dialect as the server path."""
    out = []
    for value, kind, null in zip(row, kinds, nullable, strict=True):
        if value is None:
            out.append("")
        elif kind == "datetime":
            out.append(ts_text(value))
        else:
            out.append(_quoted(str(value).encode("utf-8"), null).decode("utf-8"))
    return ",".join(out)


class GzipPart(PartFile):
    """One gzip CSV part file; its methods run on the export's file thread only."""

    def __init__(self, path: Path, level: int) -> None:
        super().__init__(path)
        self.level = level
        self._deflate: Any = None

    def write(self, data: bytes) -> None:
        if self._file is None:
            self._file = HashingFile(self.path, self.watcher)
            self._deflate = zlib_ng.compressobj(self.level, zlib_ng.DEFLATED, GZIP_WBITS)
        self._file.write(self._deflate.compress(data))

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.write(self._deflate.flush())
            self._file.complete()

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()


def _parse(line: str) -> tuple[str, ...]:
    return tuple(next(csv.reader(io.StringIO(line))))


class CsvParts:
    """The CSV format for the parts of one pass: gzip at ``level``; rows seen as their text fields."""

    file_format = FileFormat.CSV

    def __init__(self, columns: Sequence[Column], level: int) -> None:
        self.columns, self.level = columns, level

    def name(self, index: int) -> str:
        return f"part-{index:05d}{EXTENSION}"

    def new_part(self, path: Path) -> GzipPart:
        return GzipPart(path, self.level)

    def row_keys(self, lines: list[str]) -> list[tuple[Any, ...]]:
        """How a reader of the stored parts sees each CSV line (no newline): its text fields."""
        return [_parse(line) for line in lines]

    def stored_rows(self, path: Any) -> Iterator[tuple[Any, ...]]:
        """The rows of a stored part (a local path or an ``ObjectStoragePath``), as :meth:`row_keys` sees them."""
        with path.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8", newline="") as text:
            for row in csv.reader(text):
                yield tuple(row)
