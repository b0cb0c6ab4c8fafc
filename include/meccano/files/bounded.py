"""Bounded, non-blocking reading of files that plugin authors control.

A ``plugin.json`` or an ``assets/index.html`` may be anything a careless or hostile author
leaves there: a named pipe (a plain ``open`` blocks forever), a symlink to ``/dev/zero``
(a plain ``read`` never ends), a 50 MB file, a link out of ``meccano_plugins/``. Reading
here never follows the last path component if it is a symlink (``O_NOFOLLOW``), never
blocks on a pipe or device (``O_NONBLOCK``, then ``fstat`` must say *regular file*), and
reads at most ``limit`` bytes; every refusal is an :class:`UnsafeFile` saying why.
"""

from __future__ import annotations

import errno
import os
import stat

from meccano.errors import UnsafeFile

_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def file_kind(mode: int) -> str:
    """What a file of ``mode`` is, in words: "a symbolic link" (an ``lstat`` mode), "a named pipe", "a device",
    "a socket", "a folder"."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def _is_link(path: str | os.PathLike[str], dir_fd: int | None) -> bool:
    try:
        return stat.S_ISLNK(os.stat(path, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def read_bounded(path: str | os.PathLike[str], limit: int, *, truncate: bool = False,
                 dir_fd: int | None = None) -> bytes:
    """The bytes of the regular file ``path`` (relative to the open folder ``dir_fd`` when given): at most ``limit``
    of them.

    Raises :class:`FileNotFoundError` when it does not exist, :class:`UnsafeFile` when it
    is a symlink, a pipe, a device or a folder, or (unless ``truncate``) larger than
    ``limit``; other :class:`OSError` as the system reports them.
    """
    try:
        fd = os.open(path, _FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP and _is_link(path, dir_fd):  # O_NOFOLLOW met a symlink
            raise UnsafeFile("is a symbolic link; it must be a regular file inside the plugin folder "
                             "(links are not followed)") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile(f"is {file_kind(info.st_mode)}, not a regular file")
        if info.st_size > limit and not truncate:
            raise UnsafeFile(f"is {info.st_size:,} bytes; the limit is {limit:,} bytes")
        chunks: list[bytes] = []
        left = limit + (0 if truncate else 1)
        # A regular file gives what fstat announced: ask for one byte more, so a short read is its end
        # and the usual small file costs one read (a file that grew is still cut at ``limit``).
        want = min(left, info.st_size + 1)
        while left > 0:
            chunk = os.read(fd, min(left, want))
            chunks.append(chunk)
            left -= len(chunk)
            if len(chunk) < want or not chunk:
                break
            want = 65536
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) > limit:
        if not truncate:  # grew after fstat
            raise UnsafeFile(f"is over the limit of {limit:,} bytes")
        data = data[:limit]
    return data


def inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """Whether ``path``, every symlink resolved, lies inside ``root`` (also resolved)."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)
