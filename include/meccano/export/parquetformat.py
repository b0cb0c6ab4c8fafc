"""The Parquet format (``export.format: parquet``): the export's CSV blocks typed by Arrow, its part
files, their names, and how stored parts are read back.

The read path is the same as for CSV (the server joins the raw values, see
:mod:`meccano.export.csvformat`); each block of CSV lines is parsed by Arrow's C++ CSV reader
with an explicit schema taken from the table's column types, and the typed blocks are written
as row groups of ``ROW_GROUP_ROWS`` rows. Only typed blocks wait in memory, and the parts of one
pass (several days) share that bound (one :class:`ParquetParts` per pass). The dialect maps exactly:
an unquoted empty field is NULL, a quoted empty field (``""``) is the empty string, and a NOT NULL
string column's empty field is the empty string.

Column types (SQLAlchemy's names of the MySQL/SQLite types):

* integer types -> ``int64`` (``BIGINT UNSIGNED`` -> ``uint64``); ``FLOAT``/``DOUBLE``/``REAL`` -> ``float64``;
* ``DECIMAL(p, s)``/``NUMERIC(p, s)`` -> ``decimal128(p, s)``;
* ``DATETIME``/``TIMESTAMP`` -> ``timestamp[us]`` without a time zone (the wall-clock text the CSV holds),
  ``DATE`` -> ``date32``;
* everything else -> ``string``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meccano.errors import ExportError
from meccano.export.model import Column, FileFormat
from meccano.export.partfile import HashingFile, PartFile

if TYPE_CHECKING:
    # lazy: pyarrow costs 137 ms at import (python -X importtime); a CSV export never loads it
    import pyarrow as pa

COMPRESSION = "zstd"  # read by Spark 3, Athena engine 3, Trino, DuckDB, pandas
LAYOUT = {"format": FileFormat.PARQUET.value, "compression": COMPRESSION}  # the manifest's description of the files
EXTENSION = ".parquet"
# Rows per row group, the bound of the typed rows waiting in memory (all days of a pass share it). Measured on
# Facts (bench/README.md): half the next power of two keeps the export's own memory peak clearly lower, for
# files only a few per cent larger.
ROW_GROUP_ROWS = 65_536
_DECIMAL = re.compile(r"^(?:DECIMAL|NUMERIC)\((\d+),\s*(\d+)\)")


def arrow_type(type_name: str) -> pa.DataType:
    # lazy: pyarrow costs 137 ms at import (python -X importtime); a CSV export never loads it
    import pyarrow as pa

    upper = type_name.upper()
    if match := _DECIMAL.match(upper):
        return pa.decimal128(int(match.group(1)), int(match.group(2)))
    if "INT" in upper and "POINT" not in upper and "INTERVAL" not in upper:
        return pa.uint64() if "BIGINT" in upper and "UNSIGNED" in upper else pa.int64()
    if any(k in upper for k in ("DOUBLE", "FLOAT", "REAL")):
        return pa.float64()
    if "DATETIME" in upper or "TIMESTAMP" in upper:
        return pa.timestamp("us")
    if upper == "DATE":
        return pa.date32()
    return pa.string()


def arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    # lazy: pyarrow costs 137 ms at import (python -X importtime); a CSV export never loads it
    import pyarrow as pa

    return pa.schema([pa.field(c.name, arrow_type(c.type), nullable=c.nullable) for c in columns])


class CsvToArrow:
    """Arrow tables of blocks of the export's CSV dialect, typed by the table's columns."""

    def __init__(self, columns: Sequence[Column]) -> None:
        # lazy: pyarrow costs 137 ms at import (python -X importtime); a CSV export never loads it
        import pyarrow as pa
        import pyarrow.csv as pacsv  # lazy: as above

        self.schema = arrow_schema(columns)
        # typed rows waiting per open part (all parts of a pass share this converter and one file thread)
        self.waiting: dict[ParquetPart, int] = {}
        self._not_null_strings = [i for i, (c, f) in enumerate(zip(columns, self.schema, strict=True))
                                  if not c.nullable and pa.types.is_string(f.type)]
        self._read_options = pacsv.ReadOptions(column_names=self.schema.names, use_threads=False)
        self._parse_options = pacsv.ParseOptions(newlines_in_values=True)
        self._convert_options = pacsv.ConvertOptions(
            column_types=self.schema, null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False,
            timestamp_parsers=["%Y-%m-%d %H:%M:%S", pacsv.ISO8601])

    def table(self, data: bytes) -> pa.Table:
        # lazy: pyarrow costs 137 ms at import (python -X importtime); a CSV export never loads it
        import pyarrow as pa
        import pyarrow.csv as pacsv  # lazy: as above

        if not data:
            return self.schema.empty_table()
        try:
            table = pacsv.read_csv(io.BytesIO(data), self._read_options, self._parse_options, self._convert_options)
        except pa.ArrowInvalid as exc:
            raise ExportError(f"a value does not fit its column's Parquet type ({exc}); set export.format: csv "
                              "in config.yml, or report the column type") from exc
        for i in self._not_null_strings:  # an empty NOT NULL string is written as an empty field
            table = table.set_column(i, self.schema.field(i), _empty_for_null(table.column(i)))
        return table.cast(self.schema)

    def rows(self, data: bytes) -> list[tuple[Any, ...]]:
        """The typed rows of CSV lines, as Parquet readers see them (for comparisons with the target)."""
        return _rows_of(self.table(data))


class ParquetPart(PartFile):
    """One Parquet part file; its methods run on the export's file thread only (like the gzip parts)."""

    def __init__(self, path: Path, converter: CsvToArrow) -> None:
        super().__init__(path)
        self.converter = converter
        self._pending: list[Any] = []  # Arrow tables of the blocks not yet written
        self._pending_rows = 0
        self._writer: Any = None

    def write(self, data: bytes) -> None:
        """Type one block of CSV lines now (its Arrow form is what waits, not a copy of the text)."""
        table = self.converter.table(data)
        self._pending.append(table)
        self._pending_rows += table.num_rows
        waiting = self.converter.waiting
        waiting[self] = self._pending_rows
        if sum(waiting.values()) > ROW_GROUP_ROWS:  # several days in one pass: the others' rows go out first
            for other in [part for part in waiting if part is not self]:
                other._flush()
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        # lazy: pyarrow costs 137 ms at import (python -X importtime); a CSV export never loads it
        import pyarrow.parquet as pq

        if self._file is None:
            self._file = HashingFile(self.path, self.watcher)
            self._writer = pq.ParquetWriter(self._file, self.converter.schema, compression=COMPRESSION)
        if self._pending:
            # lazy: pyarrow costs 137 ms at import (python -X importtime); a CSV export never loads it
            import pyarrow as pa

            table = pa.concat_tables(self._pending)  # no copy: the blocks become the chunks of one table
            self._pending, self._pending_rows = [], 0
            self.converter.waiting.pop(self, None)
            self._writer.write_table(table, row_group_size=max(1, table.num_rows))

    def close(self) -> None:
        self._flush()
        assert self._file is not None
        self._writer.close()
        self._file.complete()

    def discard(self) -> None:
        self._pending = []
        self.converter.waiting.pop(self, None)
        if self._file is not None:
            try:
                if self._writer is not None:
                    self._writer.close()
            finally:
                self._file.close()


def _empty_for_null(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The column with its nulls read as empty strings.

    The reader's only null is the empty field, so a null slot's bytes are already empty: dropping
    the validity bitmap is enough. (``pyarrow.compute.fill_null`` does the same but its first call
    costs the process a large share of the export's memory bound in kernel set-up.)
    """
    # lazy: pyarrow costs 137 ms at import (python -X importtime); a CSV export never loads it
    import pyarrow as pa

    if not column.null_count:
        return column
    return pa.chunked_array([pa.Array.from_buffers(chunk.type, len(chunk), [None, *chunk.buffers()[1:]],
                                                   null_count=0, offset=chunk.offset) for chunk in column.chunks],
                            column.type)


def parquet_rows(path: Any, converter: CsvToArrow) -> list[tuple[Any, ...]]:
    """The rows of a Parquet part (a local path or an ``ObjectStoragePath``) as tuples of Python values."""
    # lazy: pyarrow costs 137 ms at import (python -X importtime); a CSV export never loads it
    import pyarrow.parquet as pq

    with path.open("rb") as fh:
        return _rows_of(pq.read_table(fh, schema=converter.schema))


def _rows_of(table: pa.Table) -> list[tuple[Any, ...]]:
    return list(zip(*(column.to_pylist() for column in table.columns), strict=True)) if table.num_rows else []


class ParquetParts:
    """The Parquet format for the parts of one pass: one converter shared by all its writers (it bounds their
    waiting rows together); rows seen as their typed values."""

    file_format = FileFormat.PARQUET

    def __init__(self, columns: Sequence[Column], level: int = 0) -> None:
        """``level`` (gzip's) is not used: Parquet parts are always ``COMPRESSION``."""
        self.converter = CsvToArrow(columns)

    def name(self, index: int) -> str:
        return f"part-{index:05d}{EXTENSION}"

    def new_part(self, path: Path) -> ParquetPart:
        return ParquetPart(path, self.converter)

    def row_keys(self, lines: list[str]) -> list[tuple[Any, ...]]:
        """How a reader of the stored parts sees each CSV line (no newline): its typed values."""
        return self.converter.rows(("\n".join(lines) + "\n").encode("utf-8")) if lines else []

    def stored_rows(self, path: Any) -> Iterator[tuple[Any, ...]]:
        """The rows of a stored part (a local path or an ``ObjectStoragePath``), as :meth:`row_keys` sees them."""
        yield from parquet_rows(path, self.converter)
