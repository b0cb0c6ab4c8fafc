"""Write full-mode table-days to part files (gzip CSV, or Parquet) in the task's work folder, and build
each day's manifest.

``full`` mode (nothing of the day purged yet): every row of the day, in one snapshot; the new
manifest replaces any earlier export of the day (its rows are all still in the database).
Consecutive full days of one table are read together (up to ``SCAN_DAYS``): one query, one snapshot,
each row routed to its day's files. When those days hold most of the table the query reads the
table sequentially instead of through the date index (see ``access_hint``): a backlog is read at
the speed of one sequential scan. Partly purged days are :mod:`meccano.export.reconcile`'s job.

Purge chunks are contiguous ``[from, to)`` date ranges covering the day, built from the
per-second counts of the exported rows themselves (``stream.DaySeconds``): the purge deletes a
chunk only when the database still holds exactly the exported number of rows in that range.

Nothing here touches the ledger; the target only through the :class:`~meccano.export.s3objects.PartStreams`
the export task (:mod:`meccano.export.chain`) hands in, which send each part file to S3 while it is written. That
task waits for the uploads, writes and records the manifest, then removes the work folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from meccano.errors import AmbiguousValue, ExportError
from meccano.export.context import Progress, RunContext
from meccano.export.formats import Compressor, PartWriter, batch_rows, clean_folder, day_manifest, part_format
from meccano.export.model import Column, Manifest, Mode, TableDay
from meccano.export.s3objects import PartStream, PartStreams
from meccano.export.snapshot import Snapshot, access_hint, checked_columns, date_index
from meccano.export.stream import Block, DaySeconds, run_lowered
from meccano.export.target import key_of

SCAN_DAYS = 8  # days read by one query at most: each holds an open gzip stream until the query ends
FULL_SCAN_SHARE = 0.5  # read the whole table when the days hold at least this share of its (estimated) rows


def scan_groups(days: list[TableDay]) -> Iterator[list[TableDay]]:
    """Consecutive full-mode days of one table, at most ``SCAN_DAYS``; a reconcile day alone."""
    group: list[TableDay] = []
    for p in days:
        fits = (group and p.mode == Mode.FULL and group[0].mode == Mode.FULL and len(group) < SCAN_DAYS
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


def write_days(run: RunContext, group: list[TableDay], streams: PartStreams | None = None) -> list[Manifest]:
    """Full-mode days of one table, read by one query in one snapshot, into ``run.local(day)``;
    their manifests (every part is new), in order. With ``streams``, each part file is sent to the target
    while it is written."""
    try:
        return _read_full(run, group, exact=False, streams=streams)
    except AmbiguousValue as why:
        run.log.warning("%s: %s; reading these days again, formatting every value in Python (slower)",
                        group[0].label, why)
        return _read_full(run, group, exact=True, streams=streams)


def _watch(run: RunContext, day: TableDay, streams: PartStreams | None) -> Callable[[Path], PartStream] | None:
    """What streams a day's new part file to its object in the target."""
    if streams is None:
        return None
    folder = key_of(run.target.day_folder(day))
    return lambda path: streams.watch(f"{folder}/{path.name}", path)


def _read_full(run: RunContext, group: list[TableDay], exact: bool, streams: PartStreams | None) -> list[Manifest]:
    first = group[0]
    columns = checked_columns(run.db, first.table, first.date_column)
    for p in group:
        clean_folder(run.local(p))
    index = date_index(run.db, first.table, first.date_column)
    compressor = Compressor()
    fmt = part_format(run.options.file_format, columns, run.options.gzip_level)  # one for all days: a shared bound
    writers = {p.day: PartWriter(run.local(p), run.options.part_bytes, fmt, compressor=compressor,
                                 watch=_watch(run, p, streams)) for p in group}
    days = {p.day: DaySeconds(p.day) for p in group}

    def read() -> Progress:
        return _read_group(run, group, _Reading(columns, index, exact), (writers, days), streams)

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
        seconds = days[p.day]
        manifest = day_manifest(p, run.run_id, columns, run.options.file_format, writers[p.day].records(),
                                seconds.chunks(p.start, p.end, run.options.purge_chunk_rows))
        manifest.min_date, manifest.max_date = seconds.first, seconds.last
        manifests.append(manifest)
    return manifests


class _Reading(NamedTuple):
    """How a group's rows are read: the table's checked columns, the date index read through (None: none), whether
    every value is formatted in Python (``exact``, after an ambiguous value)."""

    columns: list[Column]
    through: str | None
    exact: bool


def _read_group(run: RunContext, group: list[TableDay], reading: _Reading,
                sinks: tuple[dict[str, PartWriter], dict[str, DaySeconds]], streams: PartStreams | None) -> Progress:
    """Every row of the group's days, in one snapshot, to its day's files and per-second counts (stopped by the
    first failure of ``streams``: no use writing what cannot go up)."""
    columns, index, exact = reading
    first = group[0]
    label = first.label if len(group) == 1 else f"{first.table} {first.day}..{group[-1].day}"
    ranges = [(p.start, p.end) for p in group]
    with Snapshot(run.db, batch_rows(run.options.part_bytes)) as snap:
        expected = snap.estimate_rows(first.table, first.date_column, ranges, index)
        table_rows = snap.table_rows(first.table)
        full_scan = use_full_scan(expected, table_rows)
        if snap.mysql:
            run.log.info("%s: about %s rows, read %s", label, "?" if expected is None else f"{expected:,}",
                         f"by one sequential pass over {first.table} (about {table_rows:,} rows)" if full_scan
                         else f"through {index} (about {table_rows or 0:,} rows in the table)" if index
                         else f"by a scan of {first.table} (no index on {first.date_column})")
        progress = run.progress(f"export {label}", expected, estimated=True)
        blocks = snap.blocks(first.table, first.date_column, columns, ranges, access_hint(index, full_scan), exact)
        _route(blocks, sinks, progress, streams.check if streams is not None else _nothing)
        return progress


def _nothing() -> None:
    return None


def _route(blocks: Iterator[Block], sinks: tuple[dict[str, PartWriter], dict[str, DaySeconds]],
           progress: Progress, check: Callable[[], None]) -> None:
    """Each block to its day's files and per-second counts; ``check`` before each."""
    writers, days = sinks
    for block in blocks:
        check()
        writer = writers.get(block.day)
        if writer is None:
            raise ExportError(f"the database returned a row dated {block.day}, outside the days being exported "
                              f"({', '.join(writers)}); check that the session time zone did not change")
        writer.write(block.data, block.rows)
        days[block.day].add(block.seconds)
        progress.add(block.rows)
