"""The report store: where report plugins' charts and numbers live, read by every web server.

Layout under the store root (a local folder or an ``s3://`` prefix, both through
Airflow's :class:`~airflow.sdk.ObjectStoragePath`)::

    <root>/<plugin name>/<stamp>/output.png     the chart
    <root>/<plugin name>/<stamp>/data.csv       the numbers behind it (optional, any *.csv/*.json)
    <root>/<plugin name>/<stamp>/meta.json      written LAST: marks the entry complete

``<stamp>`` is the UTC time the report was published (``20261126T204512123456Z``), so
names sort by time. The latest report is the newest complete entry; older entries are
pruned beyond ``reports.history`` (default 10). There is no separate "latest" pointer
to go stale: readers list the plugin's folder.

Root: ``reports.directory`` in config.yml or ``MECCANO_REPORTS_DIR``; when unset,
``$AIRFLOW_HOME/meccano-reports`` (``~/airflow/meccano-reports``). Use an ``s3://``
prefix when several machines serve the UI (the connection is ``aws.connId``).

A local folder with an executor that runs tasks on other hosts (anything but Airflow's
``LocalExecutor``) would split the reports silently: each worker would publish to its own disk,
each API server read its own. So unless the folder is declared shared (``reports.shared: true`` or
``MECCANO_REPORTS_SHARED=true``: an NFS/EFS mount every worker and API server sees), publishing is
refused with a message saying how to fix it, and the web view logs a loud warning.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from meccano.contract.manifest import NAME_PATTERN, PluginType
from meccano.errors import ReportStoreError
from meccano.files.guard import list_dirs_beneath, open_folder_beneath, read_beneath, read_regular_at
from meccano.settings.config import ReportsSettings

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from meccano.contract.manifest import PluginManifest
    from meccano.settings.config import Settings

log = logging.getLogger(__name__)

DEFAULT_HISTORY: int = ReportsSettings.model_fields["history"].default  # declared once, in the settings
SHARED_ENV = "MECCANO_REPORTS_SHARED"
META = "meta.json"
CHART = "output.png"
# What a report may publish: the chart and small files of numbers. Anything else in the
# output folder (scratch files, logs) stays behind.
PUBLISHED_SUFFIXES = {".png": "image/png", ".csv": "text/csv; charset=utf-8", ".json": "application/json"}
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_META_BYTES = 64 * 1024

STAMP_RE = re.compile(r"^[0-9]{8}T[0-9]{12}Z$")
NAME_RE = re.compile(f"^{NAME_PATTERN}$")  # a plugin name: the folder of its reports
FILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}\.(png|csv|json)$")



def default_root() -> str:
    # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
    from meccano.settings.hosts import airflow_home

    return str(airflow_home() / "meccano-reports")


def split_store_problem(settings: Settings, location: str | None = None) -> str | None:
    """Why this report store would be split between hosts, or None when every host sees the same one."""
    location = location or root_location(settings)
    # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
    from meccano.settings.hosts import splitting_executors

    spread = splitting_executors(location, settings.reports.shared)
    if not spread:
        return None
    return (f"the report store is the local folder {location[len('file://'):]} but Airflow's executor "
            f"({', '.join(spread)}) runs tasks on other hosts: each worker would publish reports to its own "
            "disk and each API server would show only its own. Set reports.directory (MECCANO_REPORTS_DIR) to "
            f"an s3:// prefix, or, if that folder is a volume every worker and API server mounts, declare it with "
            f"reports.shared: true ({SHARED_ENV}=true)")


_warned: set[str] = set()


def root_location(settings: Settings) -> str:
    """The store root as a URL: ``file:///abs/path`` or ``s3://bucket/prefix``."""
    raw = (settings.reports_dir or default_root()).strip()
    if "://" in raw:
        return raw.rstrip("/")
    return "file://" + str(Path(raw).expanduser().resolve())


def stamp_of(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def time_of(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class ReportEntry:
    """One published report: its plugin, when it was made, and its files."""

    name: str
    plugin: str
    stamp: str
    created_at: datetime
    files: tuple[str, ...]
    data_interval_end: str | None = None

    @property
    def chart(self) -> str | None:
        return CHART if CHART in self.files else next((f for f in self.files if f.endswith(".png")), None)

    def as_dict(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "stamp": self.stamp, "created_at": self.created_at.isoformat(),
                "files": list(self.files), "chart": self.chart}


class ReportStore:
    """Read and write reports under one root (local folder or object storage)."""

    def __init__(self, location: str, conn_id: str | None = None, history: int = DEFAULT_HISTORY) -> None:
        self.location = location
        self.conn_id = conn_id
        self.history = history

    @classmethod
    def from_settings(cls, settings: Settings) -> ReportStore:
        """The configured store; a local folder that hosts would not share is warned about (once)."""
        location = root_location(settings)
        # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
        from meccano.settings.connections import aws_conn_id

        conn_id = aws_conn_id(settings) if location.startswith("s3://") else None
        problem = split_store_problem(settings, location)
        if problem and problem not in _warned:
            _warned.add(problem)
            log.warning("REPORTS WILL BE SPLIT BETWEEN HOSTS: %s", problem)
        return cls(location, conn_id, settings.reports.history)

    def __repr__(self) -> str:
        return f"ReportStore({self.location!r})"

    @property
    def root(self) -> ObjectStoragePath:
        from airflow.sdk import ObjectStoragePath  # lazy: airflow.sdk costs 984 ms at import (python -X importtime)

        return ObjectStoragePath(self.location + "/", conn_id=self.conn_id)

    # -- writing ----------------------------------------------------------------------

    def publish(self, manifest: PluginManifest, output_dir: Path, *, when: datetime | None = None,
                extra_meta: dict[str, Any] | None = None) -> ReportEntry:
        """Copy a report's chart and numbers into a new history entry, then prune."""
        files = publishable_files(output_dir)
        if CHART not in files:
            found = ", ".join(folder_listing(output_dir))
            raise ReportStoreError(
                f"report plugin {manifest.plugin} wrote no {CHART} into {output_dir} (found: {found or 'nothing'}); "
                "a report writes its chart to $MECCANO_REPORT_DIR/output.png (context.report_dir for native "
                "plugins), and a 'no data in the window' image when there is nothing to show")
        when = when or datetime.now(UTC)
        stamp = stamp_of(when)
        target = self.root / manifest.name / stamp
        target.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (target / name).write_bytes(data)
        meta = {"plugin": manifest.plugin, "name": manifest.name, "created_at": when.isoformat(),
                "files": sorted(files), **(extra_meta or {})}
        (target / META).write_text(json.dumps(meta, indent=1))  # last: the entry is now complete
        entry = ReportEntry(manifest.name, manifest.plugin, stamp, when, tuple(meta["files"]))
        removed = self.prune(manifest.name)
        log.info("published report %s to %s/%s/%s (%d files; pruned %d old entries)", manifest.plugin,
                 self.location, manifest.name, stamp, len(files), removed)
        return entry

    def prune(self, name: str) -> int:
        """Delete the oldest entries beyond the history limit (incomplete ones older than the kept)."""
        stamps = self._stamps(name)
        doomed = stamps[:-self.history] if len(stamps) > self.history else []
        for stamp in doomed:
            (self.root / name / stamp).rmdir(recursive=True)
        return len(doomed)

    # -- reading ----------------------------------------------------------------------
    # Never raises for what is in the store: a damaged or foreign entry is skipped (logged),
    # a symlink in a local store is never followed, and a name that is not one of ours is
    # "not found".

    @property
    def _local_root(self) -> Path | None:
        return Path(self.location.removeprefix("file://")) if self.location.startswith("file://") else None

    def _stamps(self, name: str) -> list[str]:
        """Stamps of ``name`` that are real folders with a possible date, oldest first."""
        if not NAME_RE.fullmatch(name):
            return []
        local = self._local_root
        if local is not None:
            found = list_dirs_beneath(local, [name])
        else:
            try:
                folder = self.root / name
                found = [p.name for p in folder.iterdir()] if folder.exists() else []
            except OSError as exc:
                log.warning("report store %s: cannot list %s: %s", self.location, name, exc)
                return []
        return sorted(s for s in found if valid_stamp(s))

    def names(self) -> list[str]:
        local = self._local_root
        if local is not None:
            return sorted(n for n in list_dirs_beneath(local, []) if NAME_RE.fullmatch(n))
        try:
            root = self.root
            return sorted(p.name for p in root.iterdir() if NAME_RE.fullmatch(p.name)) if root.exists() else []
        except OSError:
            return []

    def _read_bytes(self, name: str, stamp: str, filename: str, max_bytes: int) -> bytes:
        local = self._local_root
        if local is not None:
            return read_beneath(local, [name, stamp, filename], max_bytes)
        try:
            return (self.root / name / stamp / filename).read_bytes()[:max_bytes + 1]
        except OSError as exc:
            raise FileNotFoundError(filename) from exc

    def _entry(self, name: str, stamp: str) -> ReportEntry | None:
        """The entry if its meta.json is a well-formed object with the expected fields, else None."""
        try:
            raw = self._read_bytes(name, stamp, META, MAX_META_BYTES)
        except FileNotFoundError:
            return None  # still being written (meta.json comes last), or not ours
        try:
            if len(raw) > MAX_META_BYTES:
                raise ValueError(f"over {MAX_META_BYTES} bytes")
            meta = ReportMeta.model_validate_json(raw)
        except (ValidationError, ValueError, RecursionError) as exc:
            log.warning("report store %s: skipping damaged entry %s/%s (%s: %s)", self.location, name, stamp,
                        META, str(exc).splitlines()[0][:200])
            return None
        files = tuple(f for f in meta.files if FILE_RE.fullmatch(f) and f != META)
        return ReportEntry(name, meta.plugin, stamp, time_of(stamp), files)

    def history_of(self, name: str) -> list[ReportEntry]:
        """Complete entries of a plugin, newest first."""
        out = []
        for stamp in reversed(self._stamps(name)):
            entry = self._entry(name, stamp)
            if entry is not None:
                out.append(entry)
        return out

    def latest(self, name: str) -> ReportEntry | None:
        """The newest complete, well-formed entry (a damaged newer one does not hide it)."""
        for stamp in reversed(self._stamps(name)):
            entry = self._entry(name, stamp)
            if entry is not None:
                return entry
        return None

    def read(self, name: str, stamp: str, filename: str) -> bytes:
        """The bytes of one published file. Names are checked against strict patterns and,
        in a local store, opened without following any symlink, so no value and no link can
        reach outside ``<root>/<name>/<stamp>/``."""
        if not (NAME_RE.fullmatch(name) and valid_stamp(stamp) and FILE_RE.fullmatch(filename)):
            raise FileNotFoundError(filename)
        entry = self._entry(name, stamp)
        if entry is None or filename not in entry.files:
            raise FileNotFoundError(filename)
        data = self._read_bytes(name, stamp, filename, MAX_FILE_BYTES)
        if len(data) > MAX_FILE_BYTES:
            raise FileNotFoundError(filename)
        return data


class ReportMeta(BaseModel):
    """What ``meta.json`` must hold for its entry to count (other fields are kept, not read)."""

    model_config = ConfigDict(extra="allow")

    plugin: str = Field(max_length=200)
    name: str = Field(max_length=200)
    created_at: datetime
    files: list[str] = Field(max_length=100)


def valid_stamp(stamp: str) -> bool:
    """A stamp folder name with a real date and time (``20261399T...`` is not one)."""
    if not STAMP_RE.fullmatch(stamp):
        return False
    try:
        time_of(stamp)
    except ValueError:
        return False
    return True


def publishable_files(output_dir: Path) -> dict[str, bytes]:
    """The report's files by name. ``output_dir`` itself and each file are opened without following a link
    (:mod:`meccano.files.guard`): a script that replaced its report folder or a file in it by a symlink publishes
    nothing through it, and a warning names it."""
    try:
        with open_folder_beneath(output_dir.parent, [output_dir.name]) as folder:
            return _publishable_at(folder, output_dir)
    except FileNotFoundError:
        if os.path.islink(output_dir):
            log.warning("report folder %s is a symbolic link: nothing published (a report publishes only the "
                        "regular files its script wrote into its own folder)", output_dir)
        return {}


def _publishable_at(folder: int, output_dir: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name in _names_at(folder):
        if not FILE_RE.fullmatch(name) or name == META:
            continue
        try:
            data, info = read_regular_at(folder, name, MAX_FILE_BYTES)
        except FileNotFoundError:  # a symlink, a pipe, a folder; or removed since it was listed
            log.warning("report file %s is %s: not published (a report publishes only the regular files its "
                        "script wrote)", output_dir / name, _what_is(folder, name))
            continue
        if not data:
            raise ReportStoreError(f"{output_dir / name}: empty file; a report must not publish an empty "
                                   f"{Path(name).suffix}")
        if max(info.st_size, len(data)) > MAX_FILE_BYTES:
            raise ReportStoreError(f"{output_dir / name}: {info.st_size} bytes is over the {MAX_FILE_BYTES} byte "
                                   "limit of a report file; publish a smaller chart or summary")
        out[name] = data
    return out


def _what_is(folder: int, name: str) -> str:
    try:
        mode = os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode
    except OSError:
        return "gone"
    return "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"


def _names_at(folder: int) -> list[str]:
    with os.scandir(folder) as entries:
        return sorted(entry.name for entry in entries)


def folder_listing(output_dir: Path) -> list[str]:
    """The names in ``output_dir``, a real folder (never a symlink's target); empty when it is not one."""
    try:
        with open_folder_beneath(output_dir.parent, [output_dir.name]) as folder:
            return _names_at(folder)
    except FileNotFoundError:
        return []


def publish_outputs(manifest: PluginManifest, output_dir: Path, settings: Settings) -> None:
    """Called by the engines after a report plugin's last task: publish, then clean up. Refused when the
    store is a local folder other hosts would not see (see :func:`split_store_problem`)."""
    try:
        problem = split_store_problem(settings)
        if problem:
            raise ReportStoreError(f"report {manifest.plugin} not published: {problem}")
        ReportStore.from_settings(settings).publish(manifest, Path(output_dir))
    finally:
        shutil.rmtree(output_dir, ignore_errors=True)  # everything kept is now in the store; nothing stays behind


def publish_if_report(manifest: PluginManifest, output_dir: Path, settings: Settings) -> None:
    """Report plugins: hand what they wrote to the report store every web server reads."""
    if manifest.type == PluginType.REPORT:
        publish_outputs(manifest, output_dir, settings)
