"""Write full-mode day partitions to part files (gzip CSV, or Parquet) in a local work folder, and
build each day's manifest.

``full`` mode (nothing of the day purged yet): every row of the day, in one snapshot; the new
manifest replaces any earlier export of the day (its rows are all still in the database).
Consecutive full days of one table are read together (up to ``SCAN_DAYS``): one query, one snapshot,
each row routed to its day's files. When those days hold most of the table the query reads the
table sequentially instead of through the date index (see ``access_hint``): a backlog is read at
the speed of one sequential scan. Partly purged days are :mod:`meccano.export.reconcile`'s job.

Purge chunks are contiguous ``[from, to)`` date ranges covering the day, built from the
per-second counts of the exported rows themselves (``histogram.DaySeconds``): the purge deletes a
chunk only when the database still holds exactly the exported number of rows in that range.

Nothing here touches the ledger or the target: the export task (:mod:`meccano.export.chain`) uploads
the files and records the manifest in the same task, then removes the work folder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

from meccano.errors import AmbiguousValue, ExportError
from meccano.export.histogram import DaySeconds
from meccano.export.model import Chunk, Manifest, Part, Partition
from meccano.export.options import ExportOptions
from meccano.export.parts import Compressor, PartWriter, converter_for, layout_of
from meccano.export.priority import run_lowered
from meccano.export.progress import Progress
from meccano.export.schema import Column, checked_columns, date_index
from meccano.export.snapshot import Snapshot, access_hint
from meccano.export.stream import Block
from meccano.iotdb.db import Iotdb

SCAN_DAYS = 8  # days read by one query at most: each holds an open gzip stream until the query ends
FULL_SCAN_SHARE = 0.5  # read the whole table when the days hold at least this share of its (estimated) rows


def batch_rows(options: ExportOptions) -> int:
    """Rows fetched per batch: small enough that a part ends close to its size bound."""
    return max(100, min(10_000, options.part_bytes // 200))


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
    if not table_rows or export_rows is None:
        return False
    return export_rows >= FULL_SCAN_SHARE * table_rows


def build_manifest(partition: Partition, run_id: str, columns: list[Column], parts: list[Part],
                   chunks: list[Chunk], min_date: str | None, max_date: str | None, file_format: str) -> Manifest:
    return Manifest(table=partition.table, day=partition.day, date_column=partition.date_column,
                    prefix=partition.prefix, run_id=run_id, layout=layout_of(file_format),
                    schema=[{"name": c.name, "type": c.type} for c in columns], parts=parts, chunks=chunks,
                    min_date=min_date, max_date=max_date)


def clean_folder(folder: Path) -> None:
    """``folder`` made, without part files: the exact re-read of :func:`write_days` starts clean (a new
    attempt gets a new, empty work folder anyway: :mod:`meccano.export.staging`)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("part-*"):
        old.unlink()


def write_days(db: Iotdb, group: list[Partition], options: ExportOptions, folder_of: Callable[[Partition], Path],
               run_id: str, log: logging.Logger) -> list[Manifest]:
    """Full-mode days of one table, read by one query in one snapshot, into ``folder_of(day)``;
    their manifests (every part is new), in order."""
    try:
        return _read_full(db, group, options, folder_of, run_id, log, exact=False)
    except AmbiguousValue as why:
        log.warning("%s: %s; reading these days again, formatting every value in Python (slower)",
                    group[0].label, why)
        return _read_full(db, group, options, folder_of, run_id, log, exact=True)


def _read_full(db: Iotdb, group: list[Partition], options: ExportOptions, folder_of: Callable[[Partition], Path],
               run_id: str, log: logging.Logger, exact: bool) -> list[Manifest]:
    first = group[0]
    columns = checked_columns(db, first.table, first.date_column)
    for p in group:
        clean_folder(folder_of(p))
    index = date_index(db, first.table, first.date_column)
    compressor = Compressor()
    converter = converter_for(options.file_format, columns)  # one for all days: they share its memory bound
    writers = {p.day: PartWriter(folder_of(p), options.part_bytes, options.gzip_level, compressor=compressor,
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
    return [build_manifest(p, run_id, columns, writers[p.day].records(),
                           days[p.day].chunks(p.start, p.end, options.purge_chunk_rows), days[p.day].first,
                           days[p.day].last, options.file_format)
            for p in group]


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
