"""Reading files strictly beneath a root folder, never through a symlink.

Checking a path and then opening it leaves a window in which a symlink can be swapped in;
resolving and comparing misses nothing only if nobody writes meanwhile. Here every
component below the root is opened with ``O_NOFOLLOW`` relative to its parent's open
descriptor (``openat``), so a symlink anywhere below the root, to a file or a folder,
fails the open (``ELOOP``/``ENOTDIR``), whatever happens between two calls.

Any error the OS gives (no such file, a symlink, a name too long, too many components)
comes out as :class:`FileNotFoundError`: the caller answers 404.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

MAX_PARTS = 64
MAX_PATH_CHARS = 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)


def plain_parts(relative: str) -> list[str] | None:
    """The components of a relative URL path, or None when one is empty, hidden, ``..``, or odd."""
    if (not relative or len(relative) > MAX_PATH_CHARS or "\\" in relative or "\x00" in relative
            or relative.startswith("/")):
        return None
    parts = relative.split("/")
    if len(parts) > MAX_PARTS or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return None
    return parts


@contextlib.contextmanager
def _open_dirs(root: Path, parts: Sequence[str]) -> Iterator[int]:
    """A descriptor of ``root/parts...`` (each part a real folder, not a symlink)."""
    fds: list[int] = []
    try:
        fds.append(os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)))
        for part in parts:
            fds.append(os.open(part, _DIR_FLAGS, dir_fd=fds[-1]))
        yield fds[-1]
    except OSError as exc:
        raise FileNotFoundError(f"not found: {exc.strerror}") from None
    finally:
        for fd in fds:
            os.close(fd)


def read_beneath(root: Path, parts: Sequence[str], max_bytes: int) -> bytes:
    """The bytes of the regular file ``root/parts...`` (no symlink below ``root``, at most ``max_bytes``)."""
    if not parts or len(parts) > MAX_PARTS:
        raise FileNotFoundError("not found")
    with _open_dirs(root, parts[:-1]) as parent:
        data, info = read_regular_at(parent, parts[-1], max_bytes)
    if info.st_size > max_bytes or len(data) > max_bytes:
        raise FileNotFoundError("not a regular file, or too large")
    return data


@contextlib.contextmanager
def open_folder_beneath(root: Path, parts: Sequence[str]) -> Iterator[int]:
    """A descriptor of the real folder ``root/parts...`` (no part a symlink); :class:`FileNotFoundError` otherwise."""
    with _open_dirs(root, parts) as fd:
        yield fd


def read_regular_at(dir_fd: int, name: str, max_bytes: int) -> tuple[bytes, os.stat_result]:
    """The bytes (at most ``max_bytes``) and status of the regular file ``name`` in the open folder ``dir_fd``,
    opened without following a link and without blocking (a pipe, a device, a link: :class:`FileNotFoundError`)."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise FileNotFoundError(f"not found: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise FileNotFoundError("not a regular file")
        return handle.read(max_bytes + 1), info


def write_new_at(dir_fd: int, name: str, data: bytes) -> bool:
    """Create ``name`` in the open folder ``dir_fd`` and write ``data``; False when something of that name exists
    (a file, a folder or a link: never written through, never replaced)."""
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600,
                     dir_fd=dir_fd)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return True


def list_dirs_beneath(root: Path, parts: Sequence[str]) -> list[str]:
    """Names of the real folders (not symlinks) in ``root/parts...``; empty when it is not one."""
    try:
        with _open_dirs(root, parts) as fd, os.scandir(fd) as entries:
            return [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, OSError):
        return []
