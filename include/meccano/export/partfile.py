"""What every part file is, whatever its format: a file written once, whose size and SHA-256 are
taken from the bytes as they are written (no second read), and the :class:`~meccano.export.model.Part`
record it ends as. The formats build on it: :mod:`meccano.export.csvformat`,
:mod:`meccano.export.parquetformat`.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any, Protocol

from meccano.export.model import Part


class GrowthWatcher(Protocol):
    """Told as a part file grows (on the file thread): what streams it to the target while it is written
    (:class:`meccano.export.s3objects.PartStream`)."""

    chunk: int  # told every time the file has grown by at least this many bytes

    def grown(self, size: int) -> None:
        """The file holds ``size`` bytes, all on disk (flushed)."""

    def complete(self, size: int, sha256_hex: str) -> None:
        """The file is written and closed: ``size`` bytes hashing to ``sha256_hex``."""

    def cancel(self) -> None:
        """The file is given up (whatever was sent of it is thrown away)."""


class HashingFile(io.RawIOBase):
    """A write-only file that takes size and SHA-256 of what passes through it (no second read), and tells
    its watcher, if any, as it grows and when it is complete."""

    def __init__(self, path: Path, watcher: GrowthWatcher | None = None) -> None:
        self._file = path.open("wb")
        self.sha = hashlib.sha256()
        self.size = 0
        self._watcher = watcher
        self._told = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._file.write(view)
        self.sha.update(view)
        self.size += view.nbytes
        watcher = self._watcher
        if watcher is not None and self.size - self._told >= watcher.chunk:
            self._file.flush()
            watcher.grown(self.size)
            self._told = self.size
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def close(self) -> None:
        """Close (also when giving up: the watcher is not told)."""
        if not self._file.closed:
            self._file.close()
        super().close()

    def complete(self) -> None:
        """Close the fully written file and tell the watcher its size and digest."""
        self.close()
        if self._watcher is not None:
            self._watcher.complete(self.size, self.sha.hexdigest())


class PartFile:
    """What every part file has: its path, the rows and CSV bytes given to it, and its record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = self.raw = 0
        self._file: HashingFile | None = None
        self.watcher: GrowthWatcher | None = None  # set by the part writer before the first write

    def write(self, data: bytes) -> None:
        """Take one block of CSV lines (on the file thread)."""
        raise NotImplementedError

    def close(self) -> None:
        """Finish the file (on the file thread)."""
        raise NotImplementedError

    def discard(self) -> None:
        """Give up: close whatever is open."""
        raise NotImplementedError

    def record(self) -> Part:
        assert self._file is not None  # a part exists only once a block was written to it
        return Part(self.path.name, self.rows, self._file.size, self._file.sha.hexdigest(), self.raw)
