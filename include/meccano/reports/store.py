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
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from meccano.config import Settings
    from meccano.manifest import PluginManifest

log = logging.getLogger(__name__)

DEFAULT_HISTORY = 10
META = "meta.json"
CHART = "output.png"
# What a report may publish: the chart and small files of numbers. Anything else in the
# output folder (scratch files, logs) stays behind.
PUBLISHED_SUFFIXES = {".png": "image/png", ".csv": "text/csv; charset=utf-8", ".json": "application/json"}
MAX_FILE_BYTES = 20 * 1024 * 1024

STAMP_RE = re.compile(r"^[0-9]{8}T[0-9]{12}Z$")
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,99}$")
FILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}\.(png|csv|json)$")


class ReportStoreError(RuntimeError):
    """The report store cannot be used or a report is unusable; the message says why."""


def default_root() -> str:
    home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return str(Path(home) / "meccano-reports")


def history_limit(settings: Settings) -> int:
    raw = os.environ.get("MECCANO_REPORTS_HISTORY") or settings.section("reports").get("history", DEFAULT_HISTORY)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ReportStoreError(f"reports.history / MECCANO_REPORTS_HISTORY: {raw!r} is not a whole number") from None
    if value < 1:
        raise ReportStoreError(f"reports.history / MECCANO_REPORTS_HISTORY: {value} must be 1 or more")
    return value


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
        location = root_location(settings)
        from meccano.connections import aws_conn_id

        conn_id = aws_conn_id(settings) if location.startswith("s3://") else None
        return cls(location, conn_id, history_limit(settings))

    def __repr__(self) -> str:
        return f"ReportStore({self.location!r})"

    @property
    def is_local(self) -> bool:
        return self.location.startswith("file://")

    @property
    def root(self) -> ObjectStoragePath:
        from airflow.sdk import ObjectStoragePath

        return ObjectStoragePath(self.location + "/", conn_id=self.conn_id)

    # -- writing ----------------------------------------------------------------------

    def publish(self, manifest: PluginManifest, output_dir: Path, *, when: datetime | None = None,
                extra_meta: dict[str, Any] | None = None) -> ReportEntry:
        """Copy a report's chart and numbers into a new history entry, then prune."""
        files = publishable_files(output_dir)
        if CHART not in {f.name for f in files}:
            found = ", ".join(sorted(p.name for p in output_dir.iterdir())) if output_dir.is_dir() else "nothing"
            raise ReportStoreError(
                f"report plugin {manifest.plugin} wrote no {CHART} into {output_dir} (found: {found or 'nothing'}); "
                "a report writes its chart to $MECCANO_REPORT_DIR/output.png (context.report_dir for native "
                "plugins), and a 'no data in the window' image when there is nothing to show")
        when = when or datetime.now(UTC)
        stamp = stamp_of(when)
        target = self.root / manifest.name / stamp
        target.mkdir(parents=True, exist_ok=True)
        for path in files:
            (target / path.name).write_bytes(path.read_bytes())
        meta = {"plugin": manifest.plugin, "name": manifest.name, "created_at": when.isoformat(),
                "files": sorted(p.name for p in files), **(extra_meta or {})}
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

    def _stamps(self, name: str) -> list[str]:
        if not NAME_RE.match(name):
            return []
        folder = self.root / name
        try:
            if not folder.exists():
                return []
            return sorted(p.name for p in folder.iterdir() if STAMP_RE.match(p.name))
        except FileNotFoundError:
            return []

    def names(self) -> list[str]:
        try:
            root = self.root
            if not root.exists():
                return []
            return sorted(p.name for p in root.iterdir() if NAME_RE.match(p.name))
        except FileNotFoundError:
            return []

    def _entry(self, name: str, stamp: str) -> ReportEntry | None:
        try:
            meta = json.loads((self.root / name / stamp / META).read_text())
        except (FileNotFoundError, json.JSONDecodeError, OSError):
            return None  # still being written, or damaged: not a complete entry
        files = tuple(f for f in meta.get("files", []) if isinstance(f, str) and FILE_RE.match(f))
        return ReportEntry(name, str(meta.get("plugin", name)), stamp, time_of(stamp), files)

    def history_of(self, name: str) -> list[ReportEntry]:
        """Complete entries of a plugin, newest first."""
        out = []
        for stamp in reversed(self._stamps(name)):
            entry = self._entry(name, stamp)
            if entry is not None:
                out.append(entry)
        return out

    def latest(self, name: str) -> ReportEntry | None:
        for stamp in reversed(self._stamps(name)):
            entry = self._entry(name, stamp)
            if entry is not None:
                return entry
        return None

    def read(self, name: str, stamp: str, filename: str) -> bytes:
        """The bytes of one published file. Names are checked against strict patterns,
        so no value can reach outside ``<root>/<name>/<stamp>/``."""
        if not (NAME_RE.match(name) and STAMP_RE.match(stamp) and FILE_RE.match(filename)):
            raise FileNotFoundError(filename)
        entry = self._entry(name, stamp)
        if entry is None or filename not in entry.files:
            raise FileNotFoundError(filename)
        return (self.root / name / stamp / filename).read_bytes()


def publishable_files(output_dir: Path) -> list[Path]:
    if not output_dir.is_dir():
        return []
    out = []
    for path in sorted(output_dir.iterdir()):
        if path.is_file() and FILE_RE.match(path.name) and path.name != META:
            size = path.stat().st_size
            if size == 0:
                raise ReportStoreError(f"{path}: empty file; a report must not publish an empty {path.suffix}")
            if size > MAX_FILE_BYTES:
                raise ReportStoreError(f"{path}: {size} bytes is over the {MAX_FILE_BYTES} byte limit of a report "
                                       "file; publish a smaller chart or summary")
            out.append(path)
    return out


def publish_outputs(manifest: PluginManifest, output_dir: Path, settings: Settings) -> None:
    """Called by the engines after a report plugin's last task: publish, then clean up."""
    ReportStore.from_settings(settings).publish(manifest, Path(output_dir))
    shutil.rmtree(output_dir, ignore_errors=True)  # everything kept is now in the store
