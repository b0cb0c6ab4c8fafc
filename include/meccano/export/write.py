"""Export one day partition to local part files (gzip CSV, or Parquet) plus its manifest.

``full`` mode (nothing of the day purged yet): every row of the day, in one snapshot; the
new manifest replaces any earlier export of the day (its rows are all still in the database).
Consecutive full days of one table are read together (up to ``SCAN_DAYS``): one query, one
snapshot, each row routed to its day's files. When those days hold most of the table the query
reads the table sequentially instead of through the date index (see ``access_hint``): a backlog
is read at the speed of one sequential scan.

``reconcile`` mode (part of the day was purged by an earlier run, so some rows live only in
the target): the earlier parts are kept and only rows the target does not have yet are
appended as new parts (rows that arrived late in purged ranges, and the late surplus of
unpurged ranges, found by comparing with the target's own parts). Nothing is exported twice.

Purge chunks are contiguous ``[from, to)`` date ranges covering the day, built from the
per-second counts of the exported rows themselves (``histogram.DaySeconds``): the purge deletes a
chunk only when the database still holds exactly the exported number of rows in that range.
"""

from __future__ import annotations

import copy
import csv
import gzip
import io
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meccano.export.csvformat import AmbiguousValue
from meccano.export.errors import ExportError
from meccano.export.histogram import DaySeconds, counts_per_chunk
from meccano.export.ledger import Ledger, LedgerEntry
from meccano.export.options import ExportOptions
from meccano.export.parts import Compressor, PartWriter
from meccano.export.plan import Partition
from meccano.export.priority import run_lowered
from meccano.export.progress import Progress
from meccano.export.stream import Block, Column, Range, Snapshot, access_hint, date_index, table_columns
from meccano.iotdb.db import Iotdb

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

MANIFEST = "manifest.json"
SCAN_DAYS = 8  # days read by one query at most: each holds an open gzip stream until the query ends
FULL_SCAN_SHARE = 0.5  # read the whole table when the days hold at least this share of its (estimated) rows


def public_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """What is uploaded next to the parts (purge bookkeeping stays in the ledger)."""
    return {k: v for k, v in manifest.items() if k != "chunks"}


def batch_rows(options: ExportOptions) -> int:
    """Rows fetched per batch: small enough that a part ends close to its size bound."""
    return max(100, min(10_000, options.part_bytes // 200))


def _write_blocks(writer: PartWriter, progress: Progress, blocks: Iterable[Block]) -> int:
    """Write the blocks of one partition; returns the rows written."""
    written = 0
    for block in blocks:
        writer.write(block.data, block.rows)
        written += block.rows
        progress.add(block.rows)
    return written


def _write_lines(writer: PartWriter, progress: Progress, lines: list[str]) -> int:
    if lines:
        writer.write(("\n".join(lines) + "\n").encode("utf-8"), len(lines))
        progress.add(len(lines))
    return len(lines)


def scan_groups(partitions: list[Partition]) -> Iterator[list[Partition]]:
    """Consecutive full-mode partitions of one table, at most ``SCAN_DAYS``; a reconcile partition alone."""
    group: list[Partition] = []
    for p in partitions:
        fits = (group and p.mode == "full" and group[0].mode == "full" and len(group) < SCAN_DAYS
                and (p.table, p.date_column) == (group[0].table, group[0].date_column))
        if group and not fits:
            yield group
            group = []
        group.append(p)
    if group:
        yield group


def use_full_scan(export_rows: int | None, table_rows: int | None) -> bool:
    return bool(table_rows) and export_rows is not None and export_rows >= FULL_SCAN_SHARE * table_rows


def _manifest(partition: Partition, run_id: str, columns: list[Column], parts: list[dict[str, Any]],
              chunks: list[dict[str, Any]], min_date: str | None, max_date: str | None,
              file_format: str) -> dict[str, Any]:
    layout: dict[str, Any] = {"format": "csv", "compression": "gzip", "header": False, "delimiter": ",", "quote": '"'}
    if file_format == "parquet":
        from meccano.export.parquetformat import COMPRESSION

        layout = {"format": "parquet", "compression": COMPRESSION}
    return {
        "table": partition.table, "day": partition.day, "dateColumn": partition.date_column,
        "prefix": partition.prefix, "runId": run_id,
        "writtenAt": datetime.now(UTC).isoformat(timespec="seconds"),
        **layout,
        "schema": [{"name": c.name, "type": c.type} for c in columns],
        "rows": sum(p["rows"] for p in parts), "bytes": sum(p["bytes"] for p in parts),
        "minDate": min_date, "maxDate": max_date,
        "parts": parts, "chunks": chunks,
    }


def _parse(line: str) -> tuple[str, ...]:
    return tuple(next(csv.reader(io.StringIO(line))))


def _converter(file_format: str, columns: list[Column]) -> Any:
    """The CSV -> Arrow converter of Parquet parts; None for gzip CSV."""
    if file_format != "parquet":
        return None
    from meccano.export.parquetformat import CsvToArrow

    return CsvToArrow(columns)


def _row_keys(lines: list[str], converter: Any) -> list[tuple[Any, ...]]:
    """How the target's readers see each CSV line: its text fields (CSV) or its typed values (Parquet)."""
    if converter is None:
        return [_parse(line) for line in lines]
    return converter.rows(("\n".join(lines) + "\n").encode("utf-8")) if lines else []


def _target_rows(day_folder: ObjectStoragePath, parts: list[dict[str, Any]], date_index: int,
                 ranges: list[Range], converter: Any) -> Counter:
    """Rows already in the target's parts whose date falls in ``ranges`` (rare reconcile path)."""
    found: Counter = Counter()
    if converter is not None:
        from meccano.export.csvformat import ts_text
        from meccano.export.parquetformat import parquet_rows

        for part in parts:
            for row in parquet_rows(day_folder / part["key"], converter):
                if any(lo <= ts_text(row[date_index]) < hi for lo, hi in ranges):
                    found[row] += 1
        return found
    for part in parts:
        with (day_folder / part["key"]).open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8",
                                                                       newline="") as text:
            for row in csv.reader(text):
                if any(lo <= row[date_index] < hi for lo, hi in ranges):
                    found[tuple(row)] += 1
    return found


def _checked_columns(db: Iotdb, partition: Partition) -> list[Column]:
    columns = table_columns(db, partition.table)
    if partition.date_column not in {c.name for c in columns}:
        raise ExportError(f"{partition.table} has no column {partition.date_column!r}; fix config.yml "
                          "export.tables dateColumn")
    return columns


def _clean_staging(staging: Path) -> None:
    staging.mkdir(parents=True, exist_ok=True)
    for old in staging.glob("part-*"):
        old.unlink()  # a retried export starts clean


def _record(ledger: Ledger, partition: Partition, manifest: dict[str, Any], staging: Path, run_id: str,
            purged_rows: int) -> None:
    (staging / MANIFEST).write_text(json.dumps(public_manifest(manifest), indent=1))
    ledger.put(LedgerEntry(partition.table, partition.day, "exported", run_id, manifest, purged_rows))


def export_partitions(db: Iotdb, partitions: list[Partition], options: ExportOptions,
                      staging_of: Callable[[Partition], Path], run_id: str, log: logging.Logger,
                      day_folder_of: Callable[[Partition], ObjectStoragePath | None]) -> list[dict[str, Any]]:
    """Write every partition's new parts and manifest under its staging folder; record each in the ledger.

    Returns the manifests in the order of ``partitions``.
    """
    manifests: list[dict[str, Any]] = []
    for group in scan_groups(partitions):
        if group[0].mode == "reconcile":
            manifests.append(_export_reconcile(db, group[0], options, staging_of(group[0]), run_id, log,
                                               day_folder_of(group[0])))
        else:
            manifests += _export_full(db, group, options, staging_of, run_id, log)
    return manifests


def _export_reconcile(db: Iotdb, partition: Partition, options: ExportOptions, staging: Path, run_id: str,
                      log: logging.Logger, day_folder: ObjectStoragePath | None) -> dict[str, Any]:
    """The late rows of a partly purged day, appended as new parts."""
    ledger = Ledger(db)
    columns = _checked_columns(db, partition)
    _clean_staging(staging)
    previous = ledger.get(partition.table, partition.day)
    if previous is None or not previous.has_purged:
        raise ExportError(f"{partition.label}: planned as reconcile but the ledger has no purged export; "
                          "re-run the plan task")
    manifest = _reconcile(db, partition, options, staging, run_id, log, columns, previous, day_folder)
    _record(ledger, partition, manifest, staging, run_id, previous.purged_rows)
    return manifest


def _export_full(db: Iotdb, group: list[Partition], options: ExportOptions, staging_of: Callable[[Partition], Path],
                 run_id: str, log: logging.Logger) -> list[dict[str, Any]]:
    """Full-mode days of one table, read by one query in one snapshot; their manifests, in order."""
    ledger = Ledger(db)
    for p in group:
        previous = ledger.get(p.table, p.day)
        if previous is not None and previous.has_purged:
            raise ExportError(f"{p.label}: part of this day was already purged; a full re-export "
                              "would drop rows from the target. Re-run the plan task (it picks reconcile mode)")
    try:
        return _read_full(db, group, options, staging_of, run_id, log, exact=False)
    except AmbiguousValue as why:
        log.warning("%s: %s; reading these days again, formatting every value in Python (slower)",
                    group[0].label, why)
        return _read_full(db, group, options, staging_of, run_id, log, exact=True)


def _read_full(db: Iotdb, group: list[Partition], options: ExportOptions, staging_of: Callable[[Partition], Path],
               run_id: str, log: logging.Logger, exact: bool) -> list[dict[str, Any]]:
    ledger = Ledger(db)
    first = group[0]
    columns = _checked_columns(db, first)
    for p in group:
        _clean_staging(staging_of(p))
    index = date_index(db, first.table, first.date_column)
    compressor = Compressor()
    converter = _converter(options.file_format, columns)  # one for all days: they share its memory bound
    writers = {p.day: PartWriter(staging_of(p), options.part_bytes, options.gzip_level, compressor=compressor,
                                 converter=converter)
               for p in group}
    days = {p.day: DaySeconds(p.day) for p in group}
    label = first.label if len(group) == 1 else f"{first.table} {first.day}..{group[-1].day}"
    ranges = [(p.start, p.end) for p in group]

    def read() -> Progress:
        with Snapshot(db) as snap:
            expected = snap.estimate_rows(first.table, first.date_column, ranges, index)
            table_rows = snap.table_rows(first.table)
            full_scan = use_full_scan(expected, table_rows)
            if snap.mysql:
                log.info("%s: about %s rows, read %s", label, "?" if expected is None else f"{expected:,}",
                         f"by one sequential pass over {first.table} (about {table_rows:,} rows)" if full_scan
                         else f"through {index} (about {table_rows or 0:,} rows in the table)" if index
                         else f"by a scan of {first.table} (no index on {first.date_column})")
            progress = Progress(log, f"export {label}", expected, estimated=True)
            blocks = snap.blocks(first.table, first.date_column, columns, ranges, batch_rows(options),
                                 access_hint(index, full_scan), exact)
            _route(blocks, writers, days, progress)
            return progress

    try:
        progress = run_lowered(read, "meccano-export-read")
        for writer in writers.values():
            writer.end()
        compressor.finish()
    except BaseException:
        try:
            compressor.finish()
        except ExportError:
            pass  # the original error is the one to report
        for writer in writers.values():
            writer.abort()
        raise
    progress.finish()
    manifests = []
    for p in group:
        day = days[p.day]
        manifest = _manifest(p, run_id, columns, writers[p.day].records(),
                             day.chunks(p.start, p.end, options.purge_chunk_rows), day.first, day.last,
                             options.file_format)
        _record(ledger, p, manifest, staging_of(p), run_id, 0)
        manifests.append(manifest)
    return manifests


def _route(blocks: Iterator[Block], writers: dict[str, PartWriter], days: dict[str, DaySeconds],
           progress: Progress) -> None:
    """Each block to its day's files and per-second counts."""
    for block in blocks:
        writer = writers.get(block.day)
        if writer is None:
            raise ExportError(f"the database returned a row dated {block.day}, outside the days being exported "
                              f"({', '.join(writers)}); check that the session time zone did not change")
        writer.write(block.data, block.rows)
        days[block.day].add(block.seconds)
        progress.add(block.rows)


def _reconcile(db: Iotdb, partition: Partition, options: ExportOptions, staging: Path, run_id: str,
               log: logging.Logger, columns: list[Column], previous: LedgerEntry,
               day_folder: ObjectStoragePath | None) -> dict[str, Any]:
    old = previous.manifest
    chunks = copy.deepcopy(old["chunks"])
    date_index = [c.name for c in columns].index(partition.date_column)
    file_format = old.get("format", "csv")  # appended parts keep the day's format, whatever the config says now
    converter = _converter(file_format, columns)
    writer = PartWriter(staging, options.part_bytes, options.gzip_level, first_index=len(old["parts"]),
                        converter=converter)
    late_total = 0
    try:
        with Snapshot(db) as snap:
            histogram = snap.histogram(partition.table, partition.date_column, [(partition.start, partition.end)])
            sealed_late: list[Range] = []
            surplus: list[dict[str, Any]] = []
            late_rows = 0
            for ch, fresh in zip(chunks, counts_per_chunk(histogram, chunks), strict=True):
                if ch["purged"]:
                    if fresh:
                        sealed_late.append((ch["from"], ch["to"]))
                        late_rows += fresh
                        ch.update(rows=fresh, purged=False)
                elif fresh > ch["rows"]:
                    surplus.append((ch, fresh))
                elif fresh < ch["rows"]:
                    raise ExportError(f"{partition.label}: {ch['rows'] - fresh} exported row(s) in "
                                      f"[{ch['from']}, {ch['to']}) disappeared from the database without being "
                                      "purged by the export; investigate before purging")
            progress = Progress(log, f"export late rows {partition.label}", late_rows)
            if sealed_late:
                late_total += _write_blocks(writer, progress, snap.blocks(partition.table, partition.date_column,
                                                                          columns, sealed_late, batch_rows(options)))
            if surplus:
                if day_folder is None:
                    raise ExportError(f"{partition.label}: late rows in a partly purged day need the target")
                ranges = [(ch["from"], ch["to"]) for ch, _ in surplus]
                in_target = _target_rows(day_folder, old["parts"], date_index, ranges, converter)
                in_db: dict[tuple[Any, ...], list[str]] = {}
                for lines in snap.lines(partition.table, partition.date_column, columns, ranges):
                    for key, line in zip(_row_keys(lines, converter), lines, strict=True):
                        in_db.setdefault(key, []).append(line)
                late_lines: list[str] = []
                for key, same in in_db.items():
                    late_lines += same[in_target.get(key, 0):]
                missing = sum((in_target - Counter({k: len(v) for k, v in in_db.items()})).values())
                if missing:
                    raise ExportError(f"{partition.label}: {missing} exported row(s) no longer in the database; "
                                      "investigate before purging")
                for ch, fresh in surplus:
                    ch["rows"] = fresh
                late_total += _write_lines(writer, progress, late_lines)
        parts = writer.close()
    except BaseException:
        writer.abort()
        raise
    log.info("%s: %d late row(s) appended as %d new part(s)", partition.label, late_total, len(parts))
    dates = [d for d in (old.get("minDate"), old.get("maxDate")) if d] + [ts for ts, _ in histogram]
    return _manifest(partition, run_id, columns, list(old["parts"]) + parts, chunks,
                     min(dates) if dates else None, max(dates) if dates else None, file_format)
