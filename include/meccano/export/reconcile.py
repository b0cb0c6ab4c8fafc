"""``reconcile`` mode: the late rows of a day that was partly purged by an earlier run.

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
import csv
import gzip
import io
import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meccano.errors import ExportError
from meccano.export.csvformat import ts_text
from meccano.export.histogram import counts_per_chunk
from meccano.export.ledger import LedgerEntry
from meccano.export.model import Chunk, Manifest, Part, Partition, Range
from meccano.export.options import ExportOptions
from meccano.export.parquetformat import CsvToArrow, parquet_rows
from meccano.export.parts import PartWriter, converter_for
from meccano.export.progress import Progress
from meccano.export.schema import Column, checked_columns
from meccano.export.snapshot import Snapshot
from meccano.export.stream import Block
from meccano.export.write import batch_rows, build_manifest, clean_folder
from meccano.iotdb.db import Iotdb

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


def reconcile_day(db: Iotdb, partition: Partition, options: ExportOptions, folder: Path, run_id: str,
                  log: logging.Logger, previous: LedgerEntry | None,
                  day_folder: ObjectStoragePath) -> tuple[Manifest, list[Part]]:
    """The day's cumulative manifest and the new parts (written under ``folder``)."""
    if previous is None or not previous.has_purged:
        raise ExportError(f"{partition.label}: planned as reconcile but the ledger has no purged export; "
                          "re-run the plan task")
    columns = checked_columns(db, partition.table, partition.date_column)
    clean_folder(folder)
    old = previous.manifest
    chunks = copy.deepcopy(old.chunks)
    converter = converter_for(old.file_format, columns)  # late parts keep the day's format, whatever the config
    writer = PartWriter(folder, options.part_bytes, options.gzip_level, first_index=len(old.parts),
                        converter=converter)
    try:
        with Snapshot(db) as snap:
            histogram = snap.histogram(partition.table, partition.date_column, [(partition.start, partition.end)])
            sealed_late, late_rows, surplus = _compare(partition, chunks, counts_per_chunk(histogram, chunks))
            progress = Progress(log, f"export late rows {partition.label}", late_rows)
            if sealed_late:
                _write_blocks(writer, progress, snap.blocks(partition.table, partition.date_column, columns,
                                                            sealed_late, batch_rows(options)))
            if surplus:
                lines = _surplus_lines(snap, partition, columns, surplus, old.parts, day_folder, converter)
                _write_lines(writer, progress, lines)
        parts = writer.close()
    except BaseException:
        writer.abort()
        raise
    log.info("%s: %d late row(s) appended as %d new part(s)", partition.label, sum(p.rows for p in parts),
             len(parts))
    dates = [d for d in (old.min_date, old.max_date) if d] + [ts for ts, _ in histogram]
    manifest = build_manifest(partition, run_id, columns, [*old.parts, *parts], chunks,
                              min(dates) if dates else None, max(dates) if dates else None, old.file_format)
    return manifest, parts


def _compare(partition: Partition, chunks: list[Chunk],
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
            raise ExportError(f"{partition.label}: {ch.rows - fresh} exported row(s) in [{ch.start}, {ch.end}) "
                              "disappeared from the database without being purged by the export; investigate "
                              "before purging")
    return sealed_late, late_rows, surplus


def _surplus_lines(snap: Snapshot, partition: Partition, columns: list[Column], surplus: list[tuple[Chunk, int]],
                   old_parts: list[Part], day_folder: ObjectStoragePath, converter: CsvToArrow | None) -> list[str]:
    """The CSV lines of the database's rows in the surplus chunks that the target's parts lack."""
    ranges = [(ch.start, ch.end) for ch, _ in surplus]
    date_index = [c.name for c in columns].index(partition.date_column)
    in_target = target_rows(day_folder, old_parts, date_index, ranges, converter)
    in_db: dict[tuple[Any, ...], list[str]] = {}
    for lines in snap.lines(partition.table, partition.date_column, columns, ranges):
        for key, line in zip(_row_keys(lines, converter), lines, strict=True):
            in_db.setdefault(key, []).append(line)
    missing = sum((in_target - Counter({k: len(v) for k, v in in_db.items()})).values())
    if missing:
        raise ExportError(f"{partition.label}: {missing} exported row(s) no longer in the database; "
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


def _parse(line: str) -> tuple[str, ...]:
    return tuple(next(csv.reader(io.StringIO(line))))


def _row_keys(lines: list[str], converter: CsvToArrow | None) -> list[tuple[Any, ...]]:
    """How the target's readers see each CSV line: its text fields (CSV) or its typed values (Parquet)."""
    if converter is None:
        return [_parse(line) for line in lines]
    return converter.rows(("\n".join(lines) + "\n").encode("utf-8")) if lines else []


def target_rows(day_folder: ObjectStoragePath, parts: list[Part], date_index: int, ranges: list[Range],
                converter: CsvToArrow | None) -> Counter[tuple[Any, ...]]:
    """Rows already in the target's parts whose date falls in ``ranges`` (the rare reconcile path)."""
    if converter is not None:
        return _parquet_target_rows(day_folder, parts, date_index, ranges, converter)
    found: Counter[tuple[Any, ...]] = Counter()
    for part in parts:
        with (day_folder / part.key).open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8", newline="") as text:
            for row in csv.reader(text):
                if any(lo <= row[date_index] < hi for lo, hi in ranges):
                    found[tuple(row)] += 1
    return found


def _parquet_target_rows(day_folder: ObjectStoragePath, parts: list[Part], date_index: int, ranges: list[Range],
                         converter: CsvToArrow) -> Counter[tuple[Any, ...]]:
    found: Counter[tuple[Any, ...]] = Counter()
    for part in parts:
        for row in parquet_rows(day_folder / part.key, converter):
            if any(lo <= ts_text(row[date_index]) < hi for lo, hi in ranges):
                found[row] += 1
    return found
