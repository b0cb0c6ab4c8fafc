"""Verify a table-day before any purge: the target's objects match the manifest (size and
S3's own checksum of each part where the upload recorded one and the store keeps it: one ``HEAD``; else
size and sha256 read back), the folder holds nothing else, and a fresh count of every unpurged
range in the database equals what was exported. Any difference is reported as a problem;
the verify task raises :class:`VerifyError` on any.
"""

from __future__ import annotations

import json
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING

from meccano.export.context import RunContext
from meccano.export.ledger import LedgerEntry, LedgerState
from meccano.export.model import MANIFEST_NAME, Chunk, Manifest, Part, TableDay
from meccano.export.snapshot import Snapshot
from meccano.export.target import Target, key_of, size_and_sha256
from meccano.iotdb.db import Iotdb

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


VERIFY_THREADS = 4  # checks at once: a day's database count runs while its (or another day's) S3 checks do


def fresh_counts(db: Iotdb, day: TableDay, chunks: list[Chunk]) -> list[int]:
    """Rows now in the database per chunk range (index range counts, in one read view)."""
    with Snapshot(db) as snap:
        return snap.range_counts(day.table, day.date_column, [(c.start, c.end) for c in chunks])


def verify_days(run: RunContext, days: list[TableDay]) -> list[str]:
    """Every day verified; the problems found, in the days' order (empty when all are verified: the ledger then
    says ``verified`` for each).

    The fresh database counts (the server's work, most of a verify) run ``VERIFY_THREADS`` at a time on their
    own connections, all started first; this thread sets up the target (the S3 client) and checks each day's
    objects (S3's work) meanwhile."""
    with ThreadPoolExecutor(VERIFY_THREADS, thread_name_prefix="meccano-verify") as pool:
        begun = [_begin(run, day, pool) for day in days]
        run.target.prepare()
        return [m for day, started in zip(days, begun, strict=True) for m in _finish(run, day, *started)]


Counting = list[Future[list[int]]]  # a day's chunk counts, in slices counted at once


def _begin(run: RunContext, day: TableDay, pool: Executor) -> tuple[LedgerEntry | None, str, Counting]:
    """The day's ledger entry of this run (its state when there is none) and its database counts, started: its
    chunks in ``VERIFY_THREADS`` slices, so that even one day's count uses every thread."""
    entry, state = run.ledger.of_run(day.table, day.day, run.run_id, (LedgerState.UPLOADED, LedgerState.VERIFIED))
    if entry is None:
        return None, str(state), []
    chunks = entry.manifest.chunks
    size = -(-len(chunks) // VERIFY_THREADS) or 1
    return entry, str(state), [pool.submit(fresh_counts, run.db, day, chunks[first:first + size])
                               for first in range(0, len(chunks), size)]


def _finish(run: RunContext, day: TableDay, entry: LedgerEntry | None, state: str, counting: Counting) -> list[str]:
    if entry is None:
        return [f"{day.label}: not uploaded by this run (ledger state {state})"]
    manifest = entry.manifest
    open_rows = _open_rows(manifest)
    problems = _target_problems(run.target, day, run.target.day_folder(day), manifest)
    counts = [n for part in counting for n in part.result()]
    problems += _database_problems(day, manifest, counts, open_rows)
    if manifest.rows != entry.purged_rows + open_rows:
        problems.append(f"{day.label}: manifest rows {manifest.rows} != purged {entry.purged_rows} + "
                        f"unpurged {open_rows}")
    if not problems:
        run.ledger.set_state(day.table, day.day, LedgerState.VERIFIED)
        run.log.info("verified %s: %d part(s), %d row(s) in the target, %d to purge", day.label,
                     len(manifest.parts), manifest.rows, open_rows)
    return problems


def _open_rows(manifest: Manifest) -> int:
    return sum(c.rows for c in manifest.chunks if not c.purged)


def _target_problems(target: Target, day: TableDay, day_folder: ObjectStoragePath, manifest: Manifest) -> list[str]:
    """The target's day folder holds exactly the manifest and its parts, byte for byte."""
    where = f"verify {day.label} in {day_folder}"
    problems: list[str] = []
    body = target.guarded(where, lambda: target.read_object(day_folder, MANIFEST_NAME))
    if body is None:
        problems.append(f"{day.label}: {day_folder / MANIFEST_NAME} is missing")
    elif json.loads(body) != json.loads(json.dumps(manifest.public_json())):
        problems.append(f"{day.label}: {day_folder / MANIFEST_NAME} differs from the ledger's manifest")
    for part in manifest.parts:
        problems += _part_problems(target, day, day_folder / part.key, part, where)
    extra = [name for name in target.guarded(where, lambda: target.names_in(day_folder))
             if name not in manifest.keys]
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


def _database_problems(day: TableDay, manifest: Manifest, counts: list[int], open_rows: int) -> list[str]:
    """The fresh count of every chunk equals what was exported (unpurged) or nothing (purged)."""
    pairs = list(zip(counts, manifest.chunks, strict=True))
    now = sum(n for n, c in pairs if not c.purged)
    late_sealed = sum(n for n, c in pairs if c.purged)
    if now != open_rows or late_sealed or any(n != c.rows for n, c in pairs if not c.purged):
        return [f"{day.label}: the database now holds {now + late_sealed} row(s) for this day, {open_rows} "
                "were exported and not yet purged: rows arrived late or changed. Nothing is purged; the next run "
                "exports the day again (late rows included)"]
    return []
