"""Part files of bounded size (gzip CSV, or Parquet), written on a second core by a background thread.

The reader (this thread) keeps fetching rows from the database while one compression
thread deflates and writes what it was given, in order. zlib-ng's deflate releases the GIL,
so the two really run in parallel; it also gives files as small as ``gzip -6`` at about a
third of the CPU (measured in ``bench/README.md``). A part is closed once its uncompressed
size reaches the bound. The gzip header carries no name and no time, so the same rows give
the same bytes; each part's size and SHA-256 are taken from the bytes as they are written
(no second read of the file). Parquet parts (:mod:`meccano.export.parquetformat`) take the same
CSV blocks and are typed and written by the same thread.

The hand-over queue is bounded: memory stays flat however large the export is, and a
failure in the compression thread (a full disk, say) stops the reader at its next block.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zlib_ng import zlib_ng

from meccano.errors import ExportError
from meccano.export import csvformat, parquetformat
from meccano.export.model import Part
from meccano.export.parquetformat import CsvToArrow, ParquetPart
from meccano.export.partfile import HashingFile, PartFile, part_name
from meccano.export.priority import lower_this_thread
from meccano.export.schema import Column

GZIP_WBITS = 31  # deflate with a gzip header and trailer
QUEUE_BLOCKS = 16  # blocks in flight to the compression thread (each at most one fetch batch, ~1 MB)


def layout_of(file_format: str) -> dict[str, Any]:
    """The manifest's description of a format's files."""
    return dict(parquetformat.LAYOUT if file_format == "parquet" else csvformat.LAYOUT)


def converter_for(file_format: str, columns: Sequence[Column]) -> CsvToArrow | None:
    """The CSV -> Arrow converter of Parquet parts; None for gzip CSV."""
    return CsvToArrow(columns) if file_format == "parquet" else None


class Compressor:
    """One background thread running the file work of every part of an export, in submission order."""

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
        if self._error is not None:
            raise ExportError(f"writing the export files failed: {self._error}") from self._error

    def submit(self, job: Callable[[], None]) -> None:
        self.check()
        self._jobs.put(job)

    def finish(self) -> None:
        """Wait for every submitted job; raise the first failure."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
        self.check()


class GzipPart(PartFile):
    """One gzip CSV part file; its methods run on the compression thread only."""

    def __init__(self, path: Path, level: int) -> None:
        super().__init__(path)
        self.level = level
        self._deflate: Any = None

    def write(self, data: bytes) -> None:
        if self._file is None:
            self._file = HashingFile(self.path)
            self._deflate = zlib_ng.compressobj(self.level, zlib_ng.DEFLATED, GZIP_WBITS)
        self._file.write(self._deflate.compress(data))

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.write(self._deflate.flush())
            self._file.close()

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()


class PartWriter:
    """The parts of one partition: ``write`` blocks of CSV lines, ``close`` returns the part records."""

    def __init__(self, folder: Path, part_bytes: int, level: int = 5, first_index: int = 0,
                 compressor: Compressor | None = None, converter: CsvToArrow | None = None) -> None:
        """``part_bytes`` bounds the CSV bytes of a part (before compression), whatever the format.
        With a ``converter`` the parts are Parquet (one converter shared by the writers of a pass
        bounds their waiting rows together), otherwise gzip CSV at ``level``."""
        self.folder, self.part_bytes, self.level = folder, part_bytes, level
        self.index = first_index
        self._converter = converter
        self._own = compressor is None
        self._compressor = compressor or Compressor()
        self._done: list[Any] = []
        self._part: Any = None
        folder.mkdir(parents=True, exist_ok=True)

    def _new_part(self) -> Any:
        if self._converter is not None:
            return ParquetPart(self.folder / part_name(self.index, "parquet"), self._converter)
        return GzipPart(self.folder / part_name(self.index), self.level)

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
                part.discard()
