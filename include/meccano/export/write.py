"""Export one day partition to local gzip CSV parts plus its manifest.

``full`` mode (nothing of the day purged yet): every row of the day, in one snapshot; the
new manifest replaces any earlier export of the day (its rows are all still in the database).

``reconcile`` mode (part of the day was purged by an earlier run, so some rows live only in
the target): the earlier parts are kept and only rows the target does not have yet are
appended as new parts (rows that arrived late in purged ranges, and the late surplus of
unpurged ranges, found by comparing with the target's own parts). Nothing is exported twice.

Purge chunks are contiguous ``[from, to)`` date ranges covering the day, built from the
per-second histogram read in the same snapshot as the rows: the purge deletes a chunk only
when the database still holds exactly the exported number of rows in that range.
"""

from __future__ import annotations

import copy
import csv
import gzip
import io
import json
import logging
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meccano.export.errors import ExportError
from meccano.export.ledger import Ledger, LedgerEntry
from meccano.export.options import ExportOptions
from meccano.export.parts import PartWriter
from meccano.export.plan import Partition
from meccano.export.progress import Progress
from meccano.export.stream import Column, Range, Snapshot, date_index, table_columns
from meccano.iotdb.db import Iotdb

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

MANIFEST = "manifest.json"


def build_chunks(histogram: list[tuple[str, int]], start: str, end: str, chunk_rows: int) -> list[dict[str, Any]]:
    """Contiguous ranges over ``[start, end)`` of at most ``chunk_rows`` rows (one second is never split)."""
    chunks: list[dict[str, Any]] = []
    lower, acc = start, 0
    for ts, n in histogram:
        if acc and acc + n > chunk_rows:
            chunks.append({"from": lower, "to": ts, "rows": acc, "purged": False})
            lower, acc = ts, 0
        acc += n
    chunks.append({"from": lower, "to": end, "rows": acc, "purged": False})
    return chunks


def rows_in(histogram: list[tuple[str, int]], lower: str, upper: str) -> int:
    return sum(n for ts, n in histogram if lower <= ts < upper)


def public_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """What is uploaded next to the parts (purge bookkeeping stays in the ledger)."""
    return {k: v for k, v in manifest.items() if k != "chunks"}


def batch_rows(options: ExportOptions) -> int:
    """Rows fetched per batch: small enough that a part ends close to its size bound."""
    return max(100, min(10_000, options.part_bytes // 200))


def _write_blocks(writer: PartWriter, progress: Progress, blocks: Any) -> int:
    """Write ``(bytes, rows)`` blocks; returns the rows written."""
    written = 0
    for data, rows in blocks:
        writer.write(data, rows)
        written += rows
        progress.add(rows)
    return written


def _write_lines(writer: PartWriter, progress: Progress, batches: Any) -> int:
    return _write_blocks(writer, progress, ((("\n".join(lines) + "\n").encode("utf-8"), len(lines))
                                            for lines in batches if lines))


def _manifest(partition: Partition, run_id: str, columns: list[Column], parts: list[dict[str, Any]],
              chunks: list[dict[str, Any]], min_date: str | None, max_date: str | None) -> dict[str, Any]:
    return {
        "table": partition.table, "day": partition.day, "dateColumn": partition.date_column,
        "prefix": partition.prefix, "runId": run_id,
        "writtenAt": datetime.now(UTC).isoformat(timespec="seconds"),
        "format": "csv", "compression": "gzip", "header": False, "delimiter": ",", "quote": '"',
        "schema": [{"name": c.name, "type": c.type} for c in columns],
        "rows": sum(p["rows"] for p in parts), "bytes": sum(p["bytes"] for p in parts),
        "minDate": min_date, "maxDate": max_date,
        "parts": parts, "chunks": chunks,
    }


def _parse(line: str) -> tuple[str, ...]:
    return tuple(next(csv.reader(io.StringIO(line))))


def _target_rows(day_folder: ObjectStoragePath, parts: list[dict[str, Any]], date_index: int,
                 ranges: list[Range]) -> Counter:
    """Rows already in the target's parts whose date falls in ``ranges`` (rare reconcile path)."""
    found: Counter = Counter()
    for part in parts:
        with (day_folder / part["key"]).open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8",
                                                                       newline="") as text:
            for row in csv.reader(text):
                if any(lo <= row[date_index] < hi for lo, hi in ranges):
                    found[tuple(row)] += 1
    return found


def export_partition(db: Iotdb, partition: Partition, options: ExportOptions, staging: Path, run_id: str,
                     log: logging.Logger, day_folder: ObjectStoragePath | None = None) -> dict[str, Any]:
    """Write the partition's new parts and manifest under ``staging``; record it in the ledger."""
    ledger = Ledger(db)
    columns = table_columns(db, partition.table)
    if partition.date_column not in {c.name for c in columns}:
        raise ExportError(f"{partition.table} has no column {partition.date_column!r}; fix config.yml "
                          "export.tables dateColumn")
    staging.mkdir(parents=True, exist_ok=True)
    for old in staging.glob("part-*.csv.gz"):
        old.unlink()  # a retried export starts clean
    previous = ledger.get(partition.table, partition.day)
    if partition.mode == "reconcile":
        if previous is None or not previous.has_purged:
            raise ExportError(f"{partition.label}: planned as reconcile but the ledger has no purged export; "
                              "re-run the plan task")
        manifest = _reconcile(db, partition, options, staging, run_id, log, columns, previous, day_folder)
    else:
        if previous is not None and previous.has_purged:
            raise ExportError(f"{partition.label}: part of this day was already purged; a full re-export "
                              "would drop rows from the target. Re-run the plan task (it picks reconcile mode)")
        manifest = _full(db, partition, options, staging, run_id, log, columns)
    (staging / MANIFEST).write_text(json.dumps(public_manifest(manifest), indent=1))
    purged_rows = previous.purged_rows if previous is not None and partition.mode == "reconcile" else 0
    ledger.put(LedgerEntry(partition.table, partition.day, "exported", run_id, manifest, purged_rows))
    return manifest


def _full(db: Iotdb, partition: Partition, options: ExportOptions, staging: Path, run_id: str,
          log: logging.Logger, columns: list[Column]) -> dict[str, Any]:
    ranges = [(partition.start, partition.end)]
    index = date_index(db, partition.table, partition.date_column)
    writer = PartWriter(staging, options.part_bytes, options.gzip_level)
    try:
        with Snapshot(db) as snap:
            histogram = snap.histogram(partition.table, partition.date_column, ranges)
            total = sum(n for _, n in histogram)
            progress = Progress(log, f"export {partition.label}", total)
            written = _write_blocks(writer, progress, snap.blocks(partition.table, partition.date_column,
                                                                  columns, ranges, batch_rows(options), index))
        parts = writer.close()
    except BaseException:
        writer.abort()
        raise
    progress.finish()
    if written != total:
        raise ExportError(f"{partition.label}: read {written} rows but the snapshot counted {total}; "
                          "the export is inconsistent, re-run it")
    chunks = build_chunks(histogram, partition.start, partition.end, options.purge_chunk_rows)
    return _manifest(partition, run_id, columns, parts, chunks,
                     histogram[0][0] if histogram else None, histogram[-1][0] if histogram else None)


def _reconcile(db: Iotdb, partition: Partition, options: ExportOptions, staging: Path, run_id: str,
               log: logging.Logger, columns: list[Column], previous: LedgerEntry,
               day_folder: ObjectStoragePath | None) -> dict[str, Any]:
    old = previous.manifest
    chunks = copy.deepcopy(old["chunks"])
    date_index = [c.name for c in columns].index(partition.date_column)
    writer = PartWriter(staging, options.part_bytes, options.gzip_level, first_index=len(old["parts"]))
    late_total = 0
    try:
        with Snapshot(db) as snap:
            histogram = snap.histogram(partition.table, partition.date_column, [(partition.start, partition.end)])
            sealed_late: list[Range] = []
            surplus: list[dict[str, Any]] = []
            for ch in chunks:
                fresh = rows_in(histogram, ch["from"], ch["to"])
                if ch["purged"]:
                    if fresh:
                        sealed_late.append((ch["from"], ch["to"]))
                        ch.update(rows=fresh, purged=False)
                elif fresh > ch["rows"]:
                    surplus.append(ch)
                elif fresh < ch["rows"]:
                    raise ExportError(f"{partition.label}: {ch['rows'] - fresh} exported row(s) in "
                                      f"[{ch['from']}, {ch['to']}) disappeared from the database without being "
                                      "purged by the export; investigate before purging")
            progress = Progress(log, f"export late rows {partition.label}",
                                sum(rows_in(histogram, a, b) for a, b in sealed_late))
            if sealed_late:
                late_total += _write_blocks(writer, progress, snap.blocks(partition.table, partition.date_column,
                                                                          columns, sealed_late, batch_rows(options)))
            if surplus:
                if day_folder is None:
                    raise ExportError(f"{partition.label}: late rows in a partly purged day need the target")
                ranges = [(ch["from"], ch["to"]) for ch in surplus]
                in_target = _target_rows(day_folder, old["parts"], date_index, ranges)
                in_db: dict[tuple[str, ...], list[str]] = {}
                for lines in snap.lines(partition.table, partition.date_column, columns, ranges):
                    for line in lines:
                        in_db.setdefault(_parse(line), []).append(line)
                late_lines: list[str] = []
                for key, lines in in_db.items():
                    late_lines += lines[in_target.get(key, 0):]
                missing = sum((in_target - Counter({k: len(v) for k, v in in_db.items()})).values())
                if missing:
                    raise ExportError(f"{partition.label}: {missing} exported row(s) no longer in the database; "
                                      "investigate before purging")
                for ch in surplus:
                    ch["rows"] = rows_in(histogram, ch["from"], ch["to"])
                late_total += _write_lines(writer, progress, [late_lines] if late_lines else [])
        parts = writer.close()
    except BaseException:
        writer.abort()
        raise
    log.info("%s: %d late row(s) appended as %d new part(s)", partition.label, late_total, len(parts))
    dates = [d for d in (old.get("minDate"), old.get("maxDate")) if d] + [ts for ts, _ in histogram]
    return _manifest(partition, run_id, columns, list(old["parts"]) + parts, chunks,
                     min(dates) if dates else None, max(dates) if dates else None)
