"""Upload a partition's new parts, then its manifest, then remove stale parts.

The manifest is written after every part it lists, and it is the single source of truth of
a day: a stale part (left by an earlier export of the same day with more parts) is deleted
right after, so the day's folder ends up holding exactly what the manifest lists.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meccano.config import Settings
from meccano.export.errors import ExportError, StorageError
from meccano.export.ledger import Ledger
from meccano.export.plan import Partition
from meccano.export.target import fresh_listing, guarded, put_bytes, put_file, read_bytes
from meccano.export.write import MANIFEST, public_manifest
from meccano.iotdb.db import Iotdb

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


def upload_partition(db: Iotdb, settings: Settings, partition: Partition, staging: Path,
                     day_folder: ObjectStoragePath, run_id: str, new_parts: list[str],
                     log: logging.Logger, known_before: bool = True) -> dict[str, Any]:
    ledger = Ledger(db)
    entry, state = ledger.of_run(partition.table, partition.day, run_id, ("exported", "uploaded"))
    if entry is None:
        raise ExportError(f"{partition.label}: the ledger has no export of this run to upload "
                          f"(state {state}); re-run the export task")
    manifest = entry.manifest
    where = f"upload {partition.label} to {day_folder}"
    remote_manifest = day_folder / MANIFEST
    if not known_before:
        check_target_known(settings, partition, day_folder, run_id)
    missing = [name for name in new_parts if not (staging / name).is_file()]
    if missing:
        raise ExportError(f"{partition.label}: local part(s) {', '.join(missing)} are missing from {staging} "
                          "(cleaned up or exported on another worker); re-run the export task")
    if day_folder.protocol in ("file", "local"):  # S3 has no folders (and must never create the bucket)
        day_folder.mkdir(parents=True, exist_ok=True)
    for name in new_parts:
        local = staging / name
        guarded(settings, where, lambda local=local, name=name: put_file(local, day_folder / name))
        log.info("uploaded %s (%d bytes)", day_folder / name, local.stat().st_size)
    body = json.dumps(public_manifest(manifest), indent=1).encode()
    guarded(settings, where, lambda: put_bytes(body, remote_manifest))
    listed = {p["key"] for p in manifest["parts"]} | {MANIFEST}
    stale = [p for p in guarded(settings, where, lambda: fresh_listing(day_folder)) if p.name not in listed]
    for path in stale:
        guarded(settings, where, lambda path=path: path.unlink())
        log.info("removed stale object %s (not in the manifest)", path)
    ledger.set_state(partition.table, partition.day, "uploaded")
    return {"objects": len(new_parts) + 1, "stale_removed": len(stale)}


def check_target_known(settings: Settings, partition: Partition, day_folder: ObjectStoragePath,
                       run_id: str) -> None:
    """Refuse to overwrite a day in the target that the ledger did not know before this run."""
    where = f"upload {partition.label} to {day_folder}"
    path = day_folder / MANIFEST
    if not guarded(settings, where, lambda: path.exists()):
        return
    remote = json.loads(guarded(settings, where, lambda: read_bytes(path)))
    if remote.get("runId") != run_id:
        raise StorageError(f"{where}: the target already holds an export of this day that the ledger "
                           "(ExportLedger) does not know; move it away or restore the ledger before re-running")
