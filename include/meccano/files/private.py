"""This OS user's own working folder under a shared parent (``/tmp``): ``<parent>/<name>-<uid>``,
mode 0700, owned by this user and not a symlink, so another local user can neither read what a run
writes there nor plant a folder or a link in its place beforehand."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from meccano.errors import UnsafeFile


def private_folder(parent: Path, name: str) -> Path:
    """``parent/name-<uid>``, created 0700 when missing; an existing one must be this user's real folder."""
    uid = os.getuid()
    path = Path(parent) / f"{name}-{uid}"
    Path(parent).mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
        raise UnsafeFile(f"{path}: not a folder of this user (uid {uid}) but "
                         f"{'a symlink' if stat.S_ISLNK(info.st_mode) else 'owned by uid ' + str(info.st_uid)}; "
                         "remove it (another user may have planted it) and re-run")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)  # an older version made it with the default mode: close it now
    return path
