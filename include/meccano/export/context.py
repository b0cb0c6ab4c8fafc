"""One export task's run context: what every room of the chain works with, in one object.

:class:`RunContext` holds the settings, the IOTDB, the run's options and id, the task's logger, the
planned table-days, the target (whose storage errors are explained and redacted) and the ledger; the
export task adds its local work folder. Each task of the chain builds one from its inputs (XCom, the
configuration) and hands it down, so no room takes these one by one.

The work folder is where part files are written before they are uploaded. It lives only as long as one
export task attempt: ``<EXPORT_LOCALDIRECTORY>/meccano-export-staging-<uid>/<run>``, created empty when the
attempt starts and removed when it ends (success or failure). When another user planted a link or a folder of
theirs as ``meccano-export-staging-<uid>``, the attempt stages in a private ``mkdtemp`` folder instead (warned).
No other task reads it, so the next task of the run may land on any worker.

An attempt that died (SIGKILL, a lost worker) cannot remove its own folder. The next export attempt on
the same host removes it: every folder is guarded by a lock file next to it (``<run>.lock``, an
``flock`` held for the attempt's lifetime and released by the kernel when the process dies), and an
attempt sweeps the staging root for folders whose lock nobody holds. The sweep stays inside the staging
root (symbolic links are removed, never followed) and looks at ``SWEEP_LIMIT`` entries at most. A folder
without a lock file (the layout of earlier versions) is removed once it is ``LOCKLESS_STALE_SECONDS`` old.

Progress lines in the task log (:class:`Progress`): rows so far, rate, estimated time left.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import Any

from meccano.errors import ExportError, UnsafeFile
from meccano.export.ledger import Ledger
from meccano.export.location import local_directory
from meccano.export.model import TableDay
from meccano.export.options import ExportOptions
from meccano.export.target import Target
from meccano.files.names import safe_component
from meccano.files.private import private_folder
from meccano.iotdb.db import Iotdb
from meccano.settings.config import Settings

STAGING = "meccano-export-staging"
LOCK_SUFFIX = ".lock"
SWEEP_LIMIT = 200  # entries of the staging root looked at per attempt
LOCK_WAIT_SECONDS = 30.0  # another live attempt of the same run on this host: give up after this
LOCKLESS_STALE_SECONDS = 3600  # a folder without a lock file (older versions wrote none) is removed after this


def table_days(planned: dict[str, Any]) -> list[TableDay]:
    """The table-days of a plan (XCom)."""
    return [TableDay.from_json(p) for p in planned["partitions"]]


@dataclass
class RunContext:
    """One task's run of the export chain (see the module docstring)."""

    settings: Settings
    db: Iotdb
    options: ExportOptions
    run_id: str
    log: logging.Logger
    days: list[TableDay] = field(default_factory=list)
    work: Path | None = None  # the export task's work folder, while it lives

    @classmethod
    def of_plan(cls, settings: Settings, db: Iotdb, planned: dict[str, Any], log: logging.Logger) -> RunContext:
        """The context of a task after the plan, from the plan's XCom."""
        return cls(settings, db, ExportOptions.from_json(planned["options"]), planned["run_id"], log,
                   table_days(planned))

    @cached_property
    def target(self) -> Target:
        return Target(self.settings)

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.db)

    def local(self, day: TableDay) -> Path:
        """The work folder's folder of a table-day's part files."""
        assert self.work is not None, "only inside work_folder()"
        return self.work / day.table / day.day

    def progress(self, label: str, total: int | None, estimated: bool = False) -> Progress:
        return Progress(self.log, label, total, estimated=estimated)

    @contextmanager
    def work_folder(self) -> Iterator[Path]:
        """This export attempt's empty local folder, removed when the attempt ends."""
        with work_folder(self.settings, self.run_id, self.log) as work:
            self.work = work
            try:
                yield work
            finally:
                self.work = None


class Progress:
    """Progress lines of one long step (rows so far, rate, time left) every ``every_seconds``."""

    def __init__(self, log: logging.Logger, label: str, total: int | None, every_seconds: float = 5.0,
                 estimated: bool = False) -> None:
        self.about = "~" if estimated else ""
        self.log, self.label, self.total, self.every = log, label, total, every_seconds
        self.done = 0
        self.started = self.last = time.monotonic()

    def add(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self.started, 1e-6)
        rate = self.done / elapsed
        if not self.total:  # unknown (or estimated as none): no share, no ETA
            return f"{self.label}: {self.done:,} rows, {rate:,.0f} rows/s, {elapsed:,.1f}s elapsed"
        left = max(self.total - self.done, 0)
        eta = f"{left / rate:,.0f}s" if rate > 0 else "?"
        pct = f" ({min(100, 100 * self.done / self.total):.0f}%)"
        return (f"{self.label}: {self.done:,}/{self.about}{self.total:,} rows{pct}, {rate:,.0f} rows/s, "
                f"{elapsed:,.1f}s elapsed, ETA {eta}")

    def finish(self) -> str:
        line = self.line()
        self.log.info("%s (done)", line)
        return line


def staging_root(settings: Settings) -> Path:
    """This OS user's staging folder (``meccano-export-staging-<uid>``, mode 0700) in ``EXPORT_LOCALDIRECTORY``;
    :class:`UnsafeFile` when a link or another user's folder is there."""
    return private_folder(local_directory(settings), STAGING)


@contextmanager
def _staging(settings: Settings, log: logging.Logger) -> Iterator[Path]:
    """The staging root; when another user planted a link or folder in its place (which this worker may not
    remove from a sticky ``/tmp``), a private ``mkdtemp`` folder for this attempt instead, removed with it: the
    planted name blocks no run and receives nothing."""
    try:
        shared = staging_root(settings)
    except UnsafeFile as exc:
        log.warning("export staging folder %s; this attempt stages in a private temporary folder instead", exc)
    else:
        yield shared
        return
    try:
        root = Path(tempfile.mkdtemp(prefix=f"{STAGING}-private-", dir=local_directory(settings)))
    except OSError:
        root = Path(tempfile.mkdtemp(prefix=f"{STAGING}-private-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def safe_name(run_id: str) -> str:
    """The run id as one visible path component: never ``.``, ``..`` or hidden (see ``pathnames``)."""
    return safe_component(run_id)


def _lock(path: Path, wait: float = LOCK_WAIT_SECONDS) -> int:
    """An open descriptor of ``path`` holding its exclusive ``flock``; bounded wait."""
    deadline = time.monotonic() + wait
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                raise ExportError(f"another export attempt of this run still holds {path} on this host; wait for it "
                                  "to end (or stop it), then clear the task") from None
            time.sleep(0.2)
            continue
        try:
            same = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # a sweeper removed the file between our open and our lock: take the new one


def _remove(path: Path) -> None:
    """Remove a folder tree, or a file or link itself (a link is never followed)."""
    if path.is_symlink() or not path.is_dir():
        with suppress(FileNotFoundError):
            path.unlink()
        return
    shutil.rmtree(path, ignore_errors=True)


def sweep(root: Path, keep: str, log: logging.Logger) -> int:
    """Remove what dead attempts left under ``root`` (not ``keep``); returns the folders removed."""
    removed = 0
    with os.scandir(root) as entries:
        names = [e.name for e in islice(entries, SWEEP_LIMIT)]
    for name in names:
        stem = name[:-len(LOCK_SUFFIX)] if name.endswith(LOCK_SUFFIX) else name
        if stem == keep:
            continue
        if name.endswith(LOCK_SUFFIX):
            removed += _sweep_locked(root, stem)
        elif _stray(root / name):
            _remove(root / name)
            removed += 1
    if removed:
        log.info("removed %d staging folder(s) left on this host by export attempts that died", removed)
    return removed


def _stray(path: Path) -> bool:
    """Not a live attempt's: a link or file (attempts make only folders and lock files here), or a folder
    without its lock file (not this version's) that is old enough not to be an older version's live one."""
    if path.is_symlink() or not path.is_dir():
        return True
    if path.with_name(path.name + LOCK_SUFFIX).exists():
        return False
    try:
        return time.time() - path.lstat().st_mtime > LOCKLESS_STALE_SECONDS
    except FileNotFoundError:
        return False


def _sweep_locked(root: Path, stem: str) -> int:
    lock = root / (stem + LOCK_SUFFIX)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:  # gone meanwhile, or a link: remove the name only
        _remove(lock)
        return 0
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return 0  # a live attempt (another run, another worker process on this host)
    try:
        _remove(root / stem)
        _remove(lock)
    finally:
        os.close(fd)
    return 1


@contextmanager
def work_folder(settings: Settings, run_id: str, log: logging.Logger) -> Iterator[Path]:
    """An empty local folder for this export attempt, removed when the attempt ends."""
    with _staging(settings, log) as root, _attempt_folder(root, run_id, log) as folder:
        yield folder


@contextmanager
def _attempt_folder(root: Path, run_id: str, log: logging.Logger) -> Iterator[Path]:
    name = safe_name(run_id)
    lock = root / (name + LOCK_SUFFIX)
    fd = _lock(lock)
    folder = root / name
    try:
        if folder.exists() or folder.is_symlink():
            log.info("removing %s, left on this host by an earlier attempt of this run", folder)
            _remove(folder)
        sweep(root, name, log)
        folder.mkdir()
        yield folder
    finally:
        _remove(folder)
        _remove(lock)
        os.close(fd)
