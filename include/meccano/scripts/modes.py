"""Original R and Python plugins, run unchanged wherever they are deployed.

* **Read-only plugin folders** (compose mounts ``meccano_plugins/`` read-only): the
  original's report plugins write ``assets/output.png`` into their own folder. A script
  runs in a writable copy of its folder (one per run, removed afterwards; see the run
  folder below), so the relative path works and the chart is picked up from the copy;
  the deployed folder is never changed.
* **A run folder per run** (:func:`run_folder`): a script runs as another OS user (``plugins.runAs``),
  in a fresh ``mkdtemp`` folder holding a copy of its plugin folder, its report folder, ``HOME`` and
  ``TMPDIR``; the runner hands that folder to the plugin user and back (``runner.py``). The deployed
  plugin folder is never written by a script.
* **The embedded SQLite IOTDB** (the demo): an original plugin reads ``MYSQL_*`` with
  RMySQL or MySQLdb, which cannot open a SQLite file. Such a script is refused before it
  starts, with what to do, instead of failing inside the database driver.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SQLITE_VARIABLE = "MECCANO_IOTDB_SQLITE"
MAX_SOURCE_BYTES = 4 * 1024 * 1024  # what the SQLite check reads of a script


@dataclass(frozen=True)
class RunFolder:
    """One run's folder (``root``) and what is in it: the plugin folder's copy, the report folder, HOME, TMPDIR."""

    root: Path
    workdir: Path
    report: Path
    home: Path
    tmp: Path


def run_folder(folder: Path) -> RunFolder:
    """A fresh run folder (mode 0700, random name, in the temporary folder) with a copy of ``folder``; the
    plugin user reaches it through the temporary folder, which must be searchable by everyone (``/tmp``)."""
    root = Path(tempfile.mkdtemp(prefix="meccano-plugin-run-"))
    copy = root / folder.name
    shutil.copytree(folder, copy, symlinks=True, ignore=_special_files)
    out = RunFolder(root, copy, root / "report", root / "home", root / "tmp")
    for path in (out.report, out.home, out.tmp):
        path.mkdir(mode=0o700)
    return out


SQLITE_SIBLINGS = ("", "-wal", "-shm", "-journal")


_NOFOLLOW_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _share_open(fd: int, gid: int, owner: int, extra: int, want_dir: bool) -> bool:
    """Give the open file or folder ``fd`` to the group ``gid`` with ``extra`` mode bits, if it is what is expected
    (a folder or a regular file with one link, owned by ``owner``, the worker); returns whether it was changed.
    Through the descriptor only: nothing a name points at afterwards is touched."""
    info = os.fstat(fd)
    kind_ok = stat.S_ISDIR(info.st_mode) if want_dir else stat.S_ISREG(info.st_mode) and info.st_nlink == 1
    if not kind_ok or info.st_uid != owner:
        return False
    os.fchown(fd, -1, gid)
    os.fchmod(fd, (stat.S_IMODE(info.st_mode) & 0o777) | extra)  # fchown cleared set-id bits; setgid set here
    return True


def _share_sibling(folder_fd: int, name: str, gid: int, owner: int) -> None:
    try:
        fd = os.open(name, _NOFOLLOW_FILE, dir_fd=folder_fd)
    except FileNotFoundError:
        return
    except OSError as exc:  # ELOOP: a symlink in place of the file; never followed
        log.warning("SQLite IOTDB file %s is not a regular file (%s): left as it is", name, exc.strerror)
        return
    try:
        if not _share_open(fd, gid, owner, 0o060, want_dir=False):
            log.warning("SQLite IOTDB file %s is not a regular file of uid %d with one link: left as it is", name,
                        owner)
    finally:
        os.close(fd)


def share_sqlite_iotdb(path: Path, user: str) -> bool:
    """The embedded SQLite IOTDB (the demo) is the IOTDB a script is given: the plugin user's group may read and
    write it, its WAL files and, when the folder holds nothing else, its folder (SQLite creates the WAL files
    there; setgid, so they keep the group). Only a root worker can; returns whether the folder was shared.

    The folder is writable by that group, so a script may plant a link in place of a WAL file: every change is
    made through a descriptor opened without following a link (``O_NOFOLLOW``), after ``fstat`` says it is a
    regular file (one link) or a folder owned by this worker; never through a name."""
    if os.geteuid() != 0:
        return False
    gid, owner = pwd.getpwnam(user).pw_gid, os.geteuid()
    try:
        folder_fd = os.open(path.parent, _NOFOLLOW_DIR)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.stat(path.name, dir_fd=folder_fd, follow_symlinks=False).st_mode):
            return False
        for sibling in SQLITE_SIBLINGS:
            _share_sibling(folder_fd, path.name + sibling, gid, owner)
        if any(not name.startswith(path.name) for name in os.listdir(folder_fd)):
            log.warning("%s holds other files: its folder is not opened to the plugin user %s; give the SQLite "
                        "IOTDB a folder of its own so SQLite can create its WAL files there", path, user)
            return False
        return _share_open(folder_fd, gid, owner, 0o2070, want_dir=True)
    except FileNotFoundError:
        return False
    finally:
        os.close(folder_fd)


def _special_files(directory: str, names: list[str]) -> set[str]:
    """Entries that are neither folders, regular files nor symlinks."""
    skipped = set()
    for name in names:
        try:
            mode = os.lstat(os.path.join(directory, name)).st_mode
        except OSError:
            skipped.add(name)
            continue
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            skipped.add(name)
    return skipped


def remove_workdir(scratch: Path | None) -> None:
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)


def sqlite_problem(plugin: str, engine: str, source: Path) -> str | None:
    """Why an original (MySQL-only) script cannot run on the embedded SQLite IOTDB, and what to do."""
    # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
    from meccano.files.bounded import read_bounded

    try:  # bounded, regular files only: a hostile source (a pipe, /dev/zero) never hangs the check
        code = read_bounded(source.resolve(), MAX_SOURCE_BYTES, truncate=True).decode("utf-8", errors="replace")
    except OSError:
        return None
    if SQLITE_VARIABLE in code or "MYSQL_" not in code:
        return None  # reads the SQLite IOTDB itself (like deviceAvgTime), or no IOTDB at all
    driver = "RMySQL" if engine == "R" else "a MySQL driver"
    return (f"{plugin} is a plugin written for the original ServiceManager: it reads the IOTDB through "
            f"MYSQL_* with {driver}, but this deployment's IOTDB is the embedded SQLite file "
            f"({SQLITE_VARIABLE}), which {driver} cannot open. To run it unchanged, point the ServiceManager at "
            "the gateway's MySQL/MariaDB (MYSQL_HOST, MYSQL_PORT, MYSQL_USER, MYSQL_PASSWORD, MYSQL_DATABASE, "
            f"or the Airflow connection meccano_iotdb) and unset {SQLITE_VARIABLE}; or make the script read "
            f"{SQLITE_VARIABLE} when it is set (R: RSQLite, `apt-get install r-cran-rsqlite`; see "
            "meccano_plugins/deviceAvgTime:1.0); or disable the plugin (\"enabled\": false) on the demo")
