"""Upload a day's new parts, then its manifest, then remove stale parts.

The manifest is written after every part it lists, and it is the single source of truth of a day:
a stale part (left by an earlier export of the same day with more parts, or by an attempt that died
mid-upload) is deleted right after, so the day's folder ends up holding exactly what the manifest lists.
Runs in the export task, on the worker that wrote the parts.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from meccano.errors import StorageError
from meccano.export.model import MANIFEST_NAME, Manifest, Part, Partition
from meccano.export.target import fresh_listing, guarded, put_bytes, put_file, read_bytes
from meccano.settings.config import Settings

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


def upload_day(settings: Settings, partition: Partition, folder: Path, day_folder: ObjectStoragePath,
               manifest: Manifest, new_parts: list[Part], log: logging.Logger) -> int:
    """Upload ``new_parts`` from ``folder`` and the manifest; returns the stale objects removed."""
    where = f"upload {partition.label} to {day_folder}"
    if day_folder.protocol in ("file", "local"):  # S3 has no folders (and must never create the bucket)
        day_folder.mkdir(parents=True, exist_ok=True)
    for part in new_parts:
        local = folder / part.key
        guarded(settings, where, partial(put_file, local, day_folder / part.key))
        log.info("uploaded %s (%d bytes)", day_folder / part.key, part.bytes)
    body = json.dumps(manifest.public_json(), indent=1).encode()
    guarded(settings, where, lambda: put_bytes(body, day_folder / MANIFEST_NAME))
    listed = manifest.keys
    stale = [p for p in guarded(settings, where, lambda: fresh_listing(day_folder)) if p.name not in listed]
    for path in stale:
        guarded(settings, where, path.unlink)
        log.info("removed stale object %s (not in the manifest)", path)
    return len(stale)


def check_target_unknown(settings: Settings, partition: Partition, day_folder: ObjectStoragePath,
                         run_id: str) -> None:
    """Refuse to overwrite a day in the target that the ledger does not know (called before anything of
    the day is written, only when the ledger has no entry for it)."""
    where = f"upload {partition.label} to {day_folder}"
    path = day_folder / MANIFEST_NAME
    if not guarded(settings, where, lambda: path.exists()):
        return
    remote = json.loads(guarded(settings, where, lambda: read_bytes(path)))
    if remote.get("runId") != run_id:
        raise StorageError(f"{where}: the target already holds an export of this day that the ledger "
                           "(ExportLedger) does not know; move it away or restore the ledger before re-running")
