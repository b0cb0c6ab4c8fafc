"""``reconcile`` mode: the late rows of a table-day that was partly purged by an earlier run.

Some of the day's rows now live only in the target, so the day cannot be exported again whole.
The earlier parts are kept and only rows the target does not have yet are written as new parts
(numbering goes on after the earlier ones): every row now in a purged range (those arrived after
that range was purged), and for an unpurged range holding more rows than were exported, the surplus
found by comparing the database's rows with the target's own parts. Nothing is exported twice.

The base is always the manifest the ledger holds for the day, which the export task replaces only
after the new parts and manifest are in the target; so a retried attempt (on any worker) starts from
the same base and writes the same late rows again.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from meccano.errors import ExportError
from meccano.export.context import Progress, RunContext
from meccano.export.csvformat import ts_text
from meccano.export.formats import PartFormat, PartWriter, batch_rows, clean_folder, day_manifest, part_format
from meccano.export.ledger import LedgerEntry
from meccano.export.model import Chunk, Column, Manifest, Part, Range, TableDay
from meccano.export.snapshot import Snapshot, checked_columns
from meccano.export.stream import Block, counts_per_chunk

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


def reconcile_day(run: RunContext, day: TableDay, previous: LedgerEntry | None) -> tuple[Manifest, list[Part]]:
    """The day's cumulative manifest and the new parts (written under ``run.local(day)``)."""
    if previous is None or not previous.has_purged:
        raise ExportError(f"{day.label}: planned as reconcile but the ledger has no purged export; "
                          "re-run the plan task")
    columns = checked_columns(run.db, day.table, day.date_column)
    folder = run.local(day)
    clean_folder(folder)
    old = previous.manifest
    chunks = copy.deepcopy(old.chunks)
    fmt = part_format(old.file_format, columns, run.options.gzip_level)  # late parts keep the day's format
    writer = PartWriter(folder, run.options.part_bytes, fmt, first_index=len(old.parts))
    try:
        with Snapshot(run.db, batch_rows(run.options.part_bytes)) as snap:
            histogram = snap.histogram(day.table, day.date_column, [(day.start, day.end)])
            sealed_late, late_rows, surplus = _compare(day, chunks, counts_per_chunk(histogram, chunks))
            progress = run.progress(f"export late rows {day.label}", late_rows)
            if sealed_late:
                _write_blocks(writer, progress, snap.blocks(day.table, day.date_column, columns, sealed_late))
            if surplus:
                late = _Late(snap, day, columns, fmt)
                _write_lines(writer, progress, late.surplus_lines(surplus, old.parts, run.target.day_folder(day)))
        parts = writer.close()
    except BaseException:
        writer.abort()
        raise
    run.log.info("%s: %d late row(s) appended as %d new part(s)", day.label, sum(p.rows for p in parts),
                 len(parts))
    dates = [d for d in (old.min_date, old.max_date) if d] + [ts for ts, _ in histogram]
    manifest = day_manifest(day, run.run_id, columns, old.file_format, [*old.parts, *parts], chunks)
    manifest.min_date, manifest.max_date = (min(dates), max(dates)) if dates else (None, None)
    return manifest, parts


def _compare(day: TableDay, chunks: list[Chunk],
             counts: list[int]) -> tuple[list[Range], int, list[tuple[Chunk, int]]]:
    """Purged ranges holding late rows (they become unpurged chunks of those rows), their row count,
    and the unpurged chunks holding more rows than were exported, with their fresh count."""
    sealed_late: list[Range] = []
    surplus: list[tuple[Chunk, int]] = []
    late_rows = 0
    for ch, fresh in zip(chunks, counts, strict=True):
        if ch.purged:
            if fresh:
                sealed_late.append((ch.start, ch.end))
                late_rows += fresh
                ch.rows, ch.purged = fresh, False
        elif fresh > ch.rows:
            surplus.append((ch, fresh))
        elif fresh < ch.rows:
            raise ExportError(f"{day.label}: {ch.rows - fresh} exported row(s) in [{ch.start}, {ch.end}) "
                              "disappeared from the database without being purged by the export; investigate "
                              "before purging")
    return sealed_late, late_rows, surplus


class _Late:
    """The rows of one day's surplus chunks that the target's parts lack, compared as the day's format reads
    them back."""

    def __init__(self, snap: Snapshot, day: TableDay, columns: list[Column], fmt: PartFormat) -> None:
        self.snap, self.day, self.columns, self.fmt = snap, day, columns, fmt

    def surplus_lines(self, surplus: list[tuple[Chunk, int]], old_parts: list[Part],
                      day_folder: ObjectStoragePath) -> list[str]:
        """The CSV lines of the database's rows in the surplus chunks that the target's parts lack."""
        day = self.day
        ranges = [(ch.start, ch.end) for ch, _ in surplus]
        date_at = [c.name for c in self.columns].index(day.date_column)
        in_target = target_rows(self.fmt, day_folder, old_parts, date_at, ranges)
        in_db: dict[tuple[Any, ...], list[str]] = {}
        for lines in self.snap.lines(day.table, day.date_column, self.columns, ranges):
            for key, line in zip(self.fmt.row_keys(lines), lines, strict=True):
                in_db.setdefault(key, []).append(line)
        missing = sum((in_target - Counter({k: len(v) for k, v in in_db.items()})).values())
        if missing:
            raise ExportError(f"{day.label}: {missing} exported row(s) no longer in the database; "
                              "investigate before purging")
        for ch, fresh in surplus:
            ch.rows = fresh
        late: list[str] = []
        for key, same in in_db.items():
            late += same[in_target.get(key, 0):]
        return late


def _write_blocks(writer: PartWriter, progress: Progress, blocks: Iterable[Block]) -> None:
    for block in blocks:
        writer.write(block.data, block.rows)
        progress.add(block.rows)


def _write_lines(writer: PartWriter, progress: Progress, lines: list[str]) -> None:
    if lines:
        writer.write(("\n".join(lines) + "\n").encode("utf-8"), len(lines))
        progress.add(len(lines))


def target_rows(fmt: PartFormat, day_folder: ObjectStoragePath, parts: list[Part], date_at: int,
                ranges: list[Range]) -> Counter[tuple[Any, ...]]:
    """Rows already in the target's parts whose date falls in ``ranges`` (the rare reconcile path)."""
    found: Counter[tuple[Any, ...]] = Counter()
    for part in parts:
        for row in fmt.stored_rows(day_folder / part.key):
            if any(lo <= ts_text(row[date_at]) < hi for lo, hi in ranges):
                found[row] += 1
    return found
