"""This OS user's own working folders.

* :func:`private_folder`: ``<parent>/<name>-<uid>`` under a shared parent (``/tmp``), mode 0700;
* :func:`own_folders`: a chain of folders below a parent (the local export target).

Each must be a real folder owned by this user, not a symlink, so another local user can neither read what a
run writes there nor plant a folder or a link in its place beforehand (in a sticky folder such as ``/tmp``,
nobody else can rename or remove a folder of this user's afterwards)."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from meccano.errors import UnsafeFile


def _own_folder(path: Path, fix: str) -> os.stat_result:
    """The ``lstat`` of ``path`` when it is a real folder of this user; else :class:`UnsafeFile` naming it."""
    uid = os.getuid()
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
        what = "a symlink" if stat.S_ISLNK(info.st_mode) else (
            "not a folder" if not stat.S_ISDIR(info.st_mode) else f"owned by uid {info.st_uid}")
        raise UnsafeFile(f"{path}: not a folder of this user (uid {uid}) but {what}; {fix}")
    return info


def private_folder(parent: Path, name: str) -> Path:
    """``parent/name-<uid>``, created 0700 when missing; an existing one must be this user's real folder."""
    uid = os.getuid()
    path = Path(parent) / f"{name}-{uid}"
    Path(parent).mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = _own_folder(path, "remove it (another user may have planted it) and re-run")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)  # an older version made it with the default mode: close it now
    return path


def own_folders(parent: Path, parts: Sequence[str], fix: str) -> Path:
    """``parent/parts[0]/parts[1]/...``, each folder created 0700 when missing and checked to be this user's
    real folder (``parent`` itself is the operator's: it may be shared, ``/tmp``); ``fix`` ends the message of
    :class:`UnsafeFile` when one is not."""
    path = Path(parent)
    path.mkdir(parents=True, exist_ok=True)
    for part in parts:
        path = path / part
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass
        _own_folder(path, fix)
    return path
