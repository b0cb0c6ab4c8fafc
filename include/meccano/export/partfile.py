"""What every part file is, whatever its format: a file written once, whose size and SHA-256 are
taken from the bytes as they are written (no second read), and the :class:`~meccano.export.model.Part`
record it ends as. The formats build on it: :mod:`meccano.export.csvformat`,
:mod:`meccano.export.parquetformat`.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from meccano.export.model import Part


class HashingFile(io.RawIOBase):
    """A write-only file that takes size and SHA-256 of what passes through it (no second read)."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("wb")
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._file.write(view)
        self.sha.update(view)
        self.size += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        super().close()


class PartFile:
    """What every part file has: its path, the rows and CSV bytes given to it, and its record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = self.raw = 0
        self._file: HashingFile | None = None

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
