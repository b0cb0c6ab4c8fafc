"""Verify a table-day before any purge: the target's objects match the manifest (size and
S3's own checksum of each part where the upload recorded one and the store keeps it: one ``HEAD``; else
size and sha256 read back), the folder holds nothing else, and a fresh count of every unpurged
range in the database equals what was exported. Any difference is reported as a problem;
the verify task raises :class:`VerifyError` on any.
"""

from __future__ import annotations

import json
from functools import partial
from typing import TYPE_CHECKING

from meccano.export.context import RunContext
from meccano.export.ledger import LedgerState
from meccano.export.model import MANIFEST_NAME, Chunk, Manifest, Part, TableDay
from meccano.export.snapshot import Snapshot
from meccano.export.stream import counts_per_chunk
from meccano.export.target import Target, fresh_listing, key_of, read_bytes, size_and_sha256
from meccano.iotdb.db import Iotdb

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


def fresh_counts(db: Iotdb, day: TableDay, chunks: list[Chunk]) -> list[int]:
    """Rows now in the database per chunk range (one grouped index scan of the day)."""
    with Snapshot(db) as snap:
        histogram = snap.histogram(day.table, day.date_column, [(day.start, day.end)])
    return counts_per_chunk(histogram, chunks)


def verify_day(run: RunContext, day: TableDay) -> list[str]:
    """Problems found (empty when verified; the ledger then says ``verified``)."""
    entry, state = run.ledger.of_run(day.table, day.day, run.run_id, (LedgerState.UPLOADED, LedgerState.VERIFIED))
    if entry is None:
        return [f"{day.label}: not uploaded by this run (ledger state {state})"]
    manifest = entry.manifest
    problems = _target_problems(run.target, day, run.target.day_folder(day), manifest)
    open_rows = sum(c.rows for c in manifest.chunks if not c.purged)
    problems += _database_problems(run.db, day, manifest, open_rows)
    if manifest.rows != entry.purged_rows + open_rows:
        problems.append(f"{day.label}: manifest rows {manifest.rows} != purged {entry.purged_rows} + "
                        f"unpurged {open_rows}")
    if not problems:
        run.ledger.set_state(day.table, day.day, LedgerState.VERIFIED)
        run.log.info("verified %s: %d part(s), %d row(s) in the target, %d to purge", day.label,
                     len(manifest.parts), manifest.rows, open_rows)
    return problems


def _target_problems(target: Target, day: TableDay, day_folder: ObjectStoragePath, manifest: Manifest) -> list[str]:
    """The target's day folder holds exactly the manifest and its parts, byte for byte."""
    where = f"verify {day.label} in {day_folder}"
    problems: list[str] = []
    remote = json.loads(target.guarded(where, lambda: read_bytes(day_folder / MANIFEST_NAME)))
    if remote != json.loads(json.dumps(manifest.public_json())):
        problems.append(f"{day.label}: {day_folder / MANIFEST_NAME} differs from the ledger's manifest")
    for part in manifest.parts:
        problems += _part_problems(target, day, day_folder / part.key, part, where)
    extra = [p.name for p in target.guarded(where, lambda: fresh_listing(day_folder))
             if p.name not in manifest.keys]
    if extra:
        problems.append(f"{day.label}: {day_folder} holds objects not in the manifest: {', '.join(extra)}")
    return problems


def _part_problems(target: Target, day: TableDay, path: ObjectStoragePath, part: Part, where: str) -> list[str]:
    """The stored part is the one written: by S3's checksum where the upload recorded one and the store keeps
    it (a ``HEAD``), else read back and hashed."""
    s3 = target.s3
    if s3 is not None and part.checksum:
        found = target.guarded(where, partial(s3.stored, key_of(path)))
        if found is None:
            return [f"{day.label}: {path} is missing"]
        size, checksum = found
        if checksum is not None:
            if size != part.bytes or checksum != part.checksum:
                return [f"{day.label}: {path} has {size} bytes checksum {checksum}, the upload stored {part.bytes} "
                        f"bytes checksum {part.checksum}"]
            return []
    if not target.guarded(where, path.exists):
        return [f"{day.label}: {path} is missing"]
    size, sha = target.guarded(where, partial(size_and_sha256, path))
    if size != part.bytes or sha != part.sha256:
        return [f"{day.label}: {path} has {size} bytes sha256 {sha[:12]}…, the manifest says "
                f"{part.bytes} bytes sha256 {part.sha256[:12]}…"]
    return []


def _database_problems(db: Iotdb, day: TableDay, manifest: Manifest, open_rows: int) -> list[str]:
    """A fresh count of every chunk equals what was exported (unpurged) or nothing (purged)."""
    counts = fresh_counts(db, day, manifest.chunks)
    pairs = list(zip(counts, manifest.chunks, strict=True))
    now = sum(n for n, c in pairs if not c.purged)
    late_sealed = sum(n for n, c in pairs if c.purged)
    if now != open_rows or late_sealed or any(n != c.rows for n, c in pairs if not c.purged):
        return [f"{day.label}: the database now holds {now + late_sealed} row(s) for this day, {open_rows} "
                "were exported and not yet purged: rows arrived late or changed. Nothing is purged; the next run "
                "exports the day again (late rows included)"]
    return []
