"""Verify a partition before any purge: the target's objects match the manifest (size and
sha256, read back), the folder holds nothing else, and a fresh count of every unpurged
range in the database equals what was exported. Any difference raises :class:`VerifyError`.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from typing import TYPE_CHECKING

from meccano.export.histogram import counts_per_chunk
from meccano.export.ledger import Ledger
from meccano.export.model import MANIFEST_NAME, Chunk, Manifest, Partition
from meccano.export.snapshot import Snapshot
from meccano.export.target import fresh_listing, guarded, read_bytes, size_and_sha256
from meccano.iotdb.db import Iotdb
from meccano.settings.config import Settings

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


def fresh_counts(db: Iotdb, partition: Partition, chunks: list[Chunk]) -> list[int]:
    """Rows now in the database per chunk range (one grouped index scan of the day)."""
    with Snapshot(db) as snap:
        histogram = snap.histogram(partition.table, partition.date_column, [(partition.start, partition.end)])
    return counts_per_chunk(histogram, chunks)


def verify_partition(db: Iotdb, settings: Settings, partition: Partition, day_folder: ObjectStoragePath,
                     run_id: str, log: logging.Logger) -> list[str]:
    """Problems found (empty when verified; the ledger then says ``verified``)."""
    ledger = Ledger(db)
    entry, state = ledger.of_run(partition.table, partition.day, run_id, ("uploaded", "verified"))
    if entry is None:
        return [f"{partition.label}: not uploaded by this run (ledger state {state})"]
    manifest = entry.manifest
    problems = _target_problems(settings, partition, day_folder, manifest)
    open_rows = sum(c.rows for c in manifest.chunks if not c.purged)
    problems += _database_problems(db, partition, manifest, open_rows)
    if manifest.rows != entry.purged_rows + open_rows:
        problems.append(f"{partition.label}: manifest rows {manifest.rows} != purged {entry.purged_rows} + "
                        f"unpurged {open_rows}")
    if not problems:
        ledger.set_state(partition.table, partition.day, "verified")
        log.info("verified %s: %d part(s), %d row(s) in the target, %d to purge", partition.label,
                 len(manifest.parts), manifest.rows, open_rows)
    return problems


def _target_problems(settings: Settings, partition: Partition, day_folder: ObjectStoragePath,
                     manifest: Manifest) -> list[str]:
    """The target's day folder holds exactly the manifest and its parts, byte for byte."""
    where = f"verify {partition.label} in {day_folder}"
    problems: list[str] = []
    remote = json.loads(guarded(settings, where, lambda: read_bytes(day_folder / MANIFEST_NAME)))
    if remote != json.loads(json.dumps(manifest.public_json())):
        problems.append(f"{partition.label}: {day_folder / MANIFEST_NAME} differs from the ledger's manifest")
    for part in manifest.parts:
        path = day_folder / part.key
        if not guarded(settings, where, path.exists):
            problems.append(f"{partition.label}: {path} is missing")
            continue
        size, sha = guarded(settings, where, partial(size_and_sha256, path))
        if size != part.bytes or sha != part.sha256:
            problems.append(f"{partition.label}: {path} has {size} bytes sha256 {sha[:12]}…, the manifest says "
                            f"{part.bytes} bytes sha256 {part.sha256[:12]}…")
    extra = [p.name for p in guarded(settings, where, lambda: fresh_listing(day_folder))
             if p.name not in manifest.keys]
    if extra:
        problems.append(f"{partition.label}: {day_folder} holds objects not in the manifest: {', '.join(extra)}")
    return problems


def _database_problems(db: Iotdb, partition: Partition, manifest: Manifest, open_rows: int) -> list[str]:
    """A fresh count of every chunk equals what was exported (unpurged) or nothing (purged)."""
    counts = fresh_counts(db, partition, manifest.chunks)
    pairs = list(zip(counts, manifest.chunks, strict=True))
    now = sum(n for n, c in pairs if not c.purged)
    late_sealed = sum(n for n, c in pairs if c.purged)
    if now != open_rows or late_sealed or any(n != c.rows for n, c in pairs if not c.purged):
        return [f"{partition.label}: the database now holds {now + late_sealed} row(s) for this day, {open_rows} "
                "were exported and not yet purged: rows arrived late or changed. Nothing is purged; the next run "
                "exports the day again (late rows included)"]
    return []
