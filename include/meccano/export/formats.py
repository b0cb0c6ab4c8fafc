"""The format registry and the part writer: which format writes the parts (``FILE_FORMATS``, keyed by
:class:`~meccano.export.model.FileFormat`, with its manifest options in ``FILE_OPTIONS``), and part files
of bounded size written on a second core by a background thread, whatever the format.

Each format lives in one module that says how it is written, named and read back:
:mod:`meccano.export.csvformat` (gzip CSV) and :mod:`meccano.export.parquetformat` (zstd Parquet); every
part's size and SHA-256, what verify checks, are taken as it is written (:mod:`meccano.export.partfile`).

The reader (this thread) keeps fetching rows from the database while one file thread encodes and
writes what it was given, in order (zlib-ng's deflate and Arrow release the GIL, so the two really run
in parallel). A part is closed once the CSV bytes given to it reach the bound. The hand-over queue is
bounded: memory stays flat however large the export is, and a failure in the file thread (a full disk,
say) stops the reader at its next block.
"""

from __future__ import annotations

import errno
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from meccano.errors import ExportError
from meccano.export import csvformat, parquetformat
from meccano.export.model import Chunk, Column, FileFormat, Manifest, Part, TableDay
from meccano.export.partfile import GrowthWatcher, PartFile
from meccano.export.stream import lower_this_thread

# blocks in flight to the file thread (each at most one fetch batch, ~1 MB); 16 gave the same speed and
# 8-10 MB more peak memory (bench/README.md)
QUEUE_BLOCKS = 6


class PartFormat(Protocol):
    """One format's rules for the parts of one pass (one table's columns)."""

    file_format: FileFormat

    def name(self, index: int) -> str:
        """The part's object name in the day's folder (its extension says the format)."""

    def new_part(self, path: Path) -> PartFile:
        """An empty part file at ``path``, fed CSV blocks on the file thread."""

    def row_keys(self, lines: list[str]) -> list[tuple[Any, ...]]:
        """How a reader of the stored parts sees each CSV line (no newline)."""

    def stored_rows(self, path: Any) -> Iterator[tuple[Any, ...]]:
        """The rows of a stored part, as :meth:`row_keys` sees them."""


# export.format -> the format's parts (built from the table's columns and the gzip level)
FILE_FORMATS: dict[FileFormat, Callable[[Sequence[Column], int], PartFormat]] = {
    FileFormat.CSV: csvformat.CsvParts,
    FileFormat.PARQUET: parquetformat.ParquetParts,
}
# export.format -> the manifest's description of its files (the format and its options)
FILE_OPTIONS: dict[FileFormat, dict[str, Any]] = {
    FileFormat.CSV: csvformat.LAYOUT,
    FileFormat.PARQUET: parquetformat.LAYOUT,
}


def part_format(file_format: str, columns: Sequence[Column], gzip_level: int) -> PartFormat:
    """The parts of one pass in ``file_format`` (one instance shared by the writers of the pass)."""
    return FILE_FORMATS[FileFormat(file_format)](columns, gzip_level)


def layout_of(file_format: str) -> dict[str, Any]:
    """The manifest's description of a format's files."""
    return dict(FILE_OPTIONS[FileFormat(file_format)])


def batch_rows(part_bytes: int) -> int:
    """Rows fetched per batch: small enough that a part ends close to its size bound."""
    return max(100, min(10_000, part_bytes // 200))


def clean_folder(folder: Path) -> None:
    """``folder`` made, without part files: an exact re-read of the same days starts clean (a new attempt
    gets a new, empty work folder anyway: :mod:`meccano.export.context`)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("part-*"):
        old.unlink()


def day_manifest(day: TableDay, run_id: str, columns: Sequence[Column], file_format: str, parts: list[Part],
                 chunks: list[Chunk]) -> Manifest:
    """The manifest of a table-day's parts in ``file_format`` (its first and last date are set by the caller)."""
    return Manifest(table=day.table, day=day.day, date_column=day.date_column, prefix=day.prefix, run_id=run_id,
                    layout=layout_of(file_format), schema=[{"name": c.name, "type": c.type} for c in columns],
                    parts=parts, chunks=chunks)


class Compressor:
    """One background thread (the file thread) running the file work of every part of an export, in order."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=QUEUE_BLOCKS)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="meccano-export-gzip", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        lower_this_thread()
        while (job := self._jobs.get()) is not None:
            if self._error is None:  # after a failure, drain without working so the reader never blocks
                try:
                    job()
                except BaseException as exc:  # handed to the reader thread by check()
                    self._error = exc

    def check(self) -> None:
        error = self._error
        if error is None:
            return
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ExportError(f"writing the export files failed: the staging disk is full ({error.strerror}: "
                              f"{error.filename or 'a part file'}). Free space there or point EXPORT_LOCALDIRECTORY at "
                              "a larger disk (a day's parts need about its gzip size); nothing was purged, re-run"
                              ) from None
        raise ExportError(f"writing the export files failed: {error}") from error

    def submit(self, job: Callable[[], None]) -> None:
        self.check()
        self._jobs.put(job)

    def finish(self) -> None:
        """Wait for every submitted job; raise the first failure."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
        self.check()


class PartWriter:
    """The parts of one table-day: ``write`` blocks of CSV lines, ``close`` returns the part records."""

    def __init__(self, folder: Path, part_bytes: int, fmt: PartFormat, first_index: int = 0,
                 compressor: Compressor | None = None, watch: Callable[[Path], GrowthWatcher] | None = None) -> None:
        """``part_bytes`` bounds the CSV bytes of a part (before compression), whatever the format; ``watch``
        gives each new part file its watcher (the upload that streams it while it is written)."""
        self.folder, self.part_bytes, self.fmt = folder, part_bytes, fmt
        self._watch = watch
        self.index = first_index
        self._own = compressor is None
        self._compressor = compressor or Compressor()
        self._done: list[PartFile] = []
        self._part: PartFile | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def _new_part(self) -> PartFile:
        part = self.fmt.new_part(self.folder / self.fmt.name(self.index))
        if self._watch is not None:
            part.watcher = self._watch(part.path)
        return part

    def write(self, data: bytes, rows: int) -> None:
        if self._part is None:
            self._part = self._new_part()
        part = self._part
        part.rows += rows
        part.raw += len(data)
        self._compressor.submit(lambda: part.write(data))
        if part.raw >= self.part_bytes:
            self._rotate()

    def _rotate(self) -> None:
        if self._part is not None:
            self._compressor.submit(self._part.close)
            self._done.append(self._part)
            self._part = None
            self.index += 1

    def end(self) -> None:
        """No more rows: the last part is closed once the compression thread reaches it."""
        self._rotate()

    def close(self) -> list[Part]:
        """End, wait for an own compression thread, and return the records of all parts."""
        self.end()
        if self._own:
            self._compressor.finish()
        return self.records()

    def records(self) -> list[Part]:
        """The part records; call after the shared compressor has finished."""
        self._compressor.check()
        return [p.record() for p in self._done]

    def abort(self) -> None:
        """Give up: close any open file (the leftovers go with the attempt's work folder, or with the clean
        start of a re-read)."""
        parts = [*self._done, *([self._part] if self._part else [])]
        try:
            if self._own:
                self._compressor.finish()
        except ExportError:
            pass
        finally:
            for part in parts:
                if part.watcher is not None:
                    part.watcher.cancel()
                try:
                    part.discard()
                except OSError:  # noqa: S110 - a full disk fails the close's flush too; the file is thrown away
                    pass
