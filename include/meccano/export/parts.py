"""gzip CSV part files of bounded size, compressed in a separate ``gzip`` process.

Compression runs on another core while this process keeps reading rows; each part is
closed once its uncompressed size reaches the bound. ``gzip -n`` keeps no name or time in
the header, so the same rows give the same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import IO, Any

from meccano.export.errors import ExportError

HASH_BUFFER = 4 * 1024 * 1024
PIPE_BYTES = 1024 * 1024  # a larger pipe to gzip: fewer context switches between the two processes


def _widen_pipe(stream: Any) -> None:
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass  # not Linux, or above /proc/sys/fs/pipe-max-size: the default pipe works too


def part_name(index: int) -> str:
    return f"part-{index:05d}.csv.gz"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(HASH_BUFFER):
            digest.update(block)
    return digest.hexdigest()


class PartWriter:
    def __init__(self, folder: Path, part_bytes: int, level: int = 6, first_index: int = 0) -> None:
        self.folder, self.part_bytes, self.level = folder, part_bytes, level
        self.index = first_index
        self.parts: list[dict[str, Any]] = []
        self._gzip = shutil.which("gzip")
        self._file: IO[bytes] | None = None
        self._proc: subprocess.Popen | None = None
        self._stream: Any = None
        self._raw = 0
        self._rows = 0
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def _path(self) -> Path:
        return self.folder / part_name(self.index)

    def _open(self) -> None:
        self._file = self._path.open("wb")
        if self._gzip:
            self._proc = subprocess.Popen([self._gzip, f"-{self.level}", "-n", "-c"], stdin=subprocess.PIPE,
                                          stdout=self._file)
            self._stream = self._proc.stdin
            _widen_pipe(self._stream)
        else:  # no gzip binary: compress in-process (slower, same format)
            self._stream = gzip.GzipFile(fileobj=self._file, mode="wb", compresslevel=self.level, mtime=0)
        self._raw = self._rows = 0

    def write(self, data: bytes, rows: int) -> None:
        if self._stream is None:
            self._open()
        self._stream.write(data)
        self._raw += len(data)
        self._rows += rows
        if self._raw >= self.part_bytes:
            self._close_part()

    def _close_part(self) -> None:
        if self._stream is None:
            return
        self._stream.close()
        if self._proc is not None:
            code = self._proc.wait()
            if code != 0:
                raise ExportError(f"gzip exited with code {code} while writing {self._path}")
        assert self._file is not None
        self._file.close()
        path = self._path
        self.parts.append({"key": path.name, "rows": self._rows, "bytes": path.stat().st_size,
                           "sha256": file_sha256(path), "uncompressedBytes": self._raw})
        self._stream = self._proc = self._file = None
        self.index += 1

    def close(self) -> list[dict[str, Any]]:
        self._close_part()
        return self.parts

    def abort(self) -> None:
        try:
            if self._stream is not None:
                self._stream.close()
            if self._proc is not None:
                self._proc.kill()
                self._proc.wait()
            if self._file is not None:
                self._file.close()
        except OSError:
            pass
