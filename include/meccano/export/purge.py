"""Purge a verified table-day: its whole MySQL partition taken out when that is exact, else in bounded
chunks, each its own transaction.

Chunked purge: each chunk is one ``[from, to)`` date range of at most ``purgeChunkRows`` exported rows.
Its ``DELETE`` and the ledger's record of it commit together; the transaction is rolled
back when the ``DELETE`` would remove another number of rows than was exported and
verified for that range (a row arrived late in between), so a row that is not in the
target is never deleted. Deleting by exact ranges (instead of ``DELETE ... LIMIT n`` on a
table without a primary key) is what makes that check possible; each chunk still touches
at most ~``purgeChunkRows`` rows, so the gateway's inserts are never blocked for long.

Partition drop: used only when the table is partitioned by day (``meccano.iotdb.partitions``),
the table-day is exactly one partition, and that partition holds exactly the verified number of rows.
Otherwise :func:`drop_day` returns ``None`` and the chunked purge runs.

Why an ``EXCHANGE`` and not ``DROP``/``TRUNCATE PARTITION`` after a count: a row inserted
between the count and the drop would vanish unexported. Instead the partition's rows are
swapped into an empty holding table (``ALTER TABLE ... EXCHANGE PARTITION``: a metadata change
of milliseconds; the partition stays, empty, and keeps receiving late rows), then the holding
table, which nobody else writes, is counted per purge chunk at leisure. Exactly the verified
rows -> the ledger says purged, then the holding table is dropped. Anything else -> the holding
table's rows go back into the table in one transaction and the chunked purge takes over.

Crash safety: the ledger records the attempt (``Manifest.drop``) before the holding table
exists; :func:`recover` (called by the plan step and before any drop) finishes or undoes an
interrupted attempt from what it finds: holding table missing or empty -> nothing happened;
holding table with exactly the verified rows -> finish; anything else -> rows go back.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from meccano.errors import ExportError, PurgeStopped
from meccano.export.context import RunContext
from meccano.export.ledger import LedgerEntry, LedgerState, record_progress
from meccano.export.model import Chunk, TableDay
from meccano.iotdb import partitions as pt
from meccano.iotdb.db import Iotdb
from meccano.iotdb.partition_ops import run_ddl

MARK = "drop"


def purge_day(run: RunContext, day: TableDay, after_chunk: Callable[[int], None] | None = None) -> int:
    """Delete the verified rows of the table-day; returns the rows deleted by this call."""
    from sqlalchemy import text  # lazy: sqlalchemy costs 124 ms at import (python -X importtime)

    dropped = drop_day(run, day)  # the whole daily partition, when exact
    if dropped is not None:
        return dropped
    db = run.db
    entry, state = run.ledger.of_run(day.table, day.day, run.run_id, (LedgerState.VERIFIED, LedgerState.PURGING))
    if entry is None:
        raise ExportError(f"{day.label}: not verified by this run (ledger state "
                          f"{state}); nothing purged")
    manifest = entry.manifest
    chunks = manifest.chunks
    col = day.date_column
    delete = text(f"DELETE FROM {day.table} WHERE {col} >= :a AND {col} < :b")
    todo = [i for i, c in enumerate(chunks) if not c.purged]
    progress = run.progress(f"purge {day.label}", sum(chunks[i].rows for i in todo))
    deleted = 0
    for i in todo:
        chunk = chunks[i]
        with db.begin() as con:
            n = con.execute(delete, {"a": chunk.start, "b": chunk.end}).rowcount if chunk.rows else 0
            if n != chunk.rows:
                raise PurgeStopped(  # leaving the block rolls this chunk back
                    f"{day.label}: purge stopped in [{chunk.start}, {chunk.end}): {n} row(s) there, "
                    f"{chunk.rows} exported; late rows arrived after verification. That chunk was rolled "
                    f"back; {deleted} row(s) purged so far. The next run exports the late rows and "
                    "finishes the purge")
            chunk.purged = True
            entry.purged_rows += n
            last = all(c.purged for c in chunks)
            record_progress(con, entry, LedgerState.PURGED if last else LedgerState.PURGING)
        deleted += n
        progress.add(n)
        if after_chunk is not None:
            after_chunk(i)
    if not todo:
        run.ledger.set_state(day.table, day.day, LedgerState.PURGED)
    progress.finish()
    return deleted


def holding_name(table: str, day: str) -> str:
    return f"{table}_purge_{day.replace('-', '')}"


def _exists(db: Iotdb, table: str) -> bool:
    return bool(db.scalar("SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                          "AND TABLE_NAME = :t", t=table))


def _per_chunk(db: Iotdb, holding: str, column: str, chunks: list[Chunk]) -> tuple[list[int], int]:
    """Rows of the holding table in each chunk range, and rows outside every chunk.

    One statement of index range counts (``UNION ALL``), one per elementary interval between the chunk
    bounds plus below and above them: the same ``>= from AND < to`` comparisons the export and the
    chunked purge use, through the date index (several times faster than one grouped scan fetched to
    Python or a per-row ``UNIX_TIMESTAMP()``).
    """
    points = sorted({c.start for c in chunks} | {c.end for c in chunks})
    last = len(points)
    selects = [f"SELECT 0 AS k, COUNT(*) AS n FROM {holding} WHERE {column} < :p0"]
    selects += [f"SELECT {k} AS k, COUNT(*) AS n FROM {holding} WHERE {column} >= :p{k - 1} AND {column} < :p{k}"
                for k in range(1, last)]
    selects.append(f"SELECT {last} AS k, COUNT(*) AS n FROM {holding} WHERE {column} >= :p{last - 1}")
    per_interval = [0] * (last + 1)  # [k]: rows in [points[k-1], points[k]); 0 and last: outside
    for r in db.query(" UNION ALL ".join(selects), **{f"p{k}": p for k, p in enumerate(points)}):
        per_interval[int(r["k"])] += int(r["n"])
    index = {p: k for k, p in enumerate(points)}
    counts = [sum(per_interval[index[c.start] + 1:index[c.end] + 1]) for c in chunks]
    return counts, sum(per_interval) - sum(counts)


def drop_day(run: RunContext, day: TableDay) -> int | None:
    """Rows purged by taking the table-day's partition out, or None: use the chunked purge."""
    db = run.db
    if db.dialect != "mysql":
        return None
    entry, _ = run.ledger.of_run(day.table, day.day, run.run_id, (LedgerState.VERIFIED, LedgerState.PURGING))
    if entry is None:
        return None  # the chunked purge reports why
    if entry.manifest.drop is not None:
        done = recover(run, day.table, day.day)
        if done is not None:
            return done
        entry = run.ledger.get(day.table, day.day)
        assert entry is not None
    chunks = entry.manifest.chunks
    if any(c.purged for c in chunks):
        return None  # part of the day is already gone chunk by chunk: finish it that way
    layout = pt.inspect(db, day.table)
    if not layout.by_day_of(day.date_column):
        return None
    lo, hi = pt.epochs(db, day.start, day.end)
    part = layout.exact(lo, hi)
    if part is None:
        run.log.info("%s: no partition holds exactly this day: purged by chunks", day.label)
        return None
    rows = sum(c.rows for c in chunks)
    began = time.perf_counter()
    timings: dict[str, float] = {}
    # No count of the partition first: it would cost as much as the count of the holding table below, which
    # is the one that decides (nobody writes there). Late rows before the exchange are rare; they only cost
    # putting the rows back.
    holding = holding_name(day.table, day.day)
    entry.manifest.drop = {"partition": part.name, "holding": holding, "rows": rows}
    with db.begin() as con:
        record_progress(con, entry, LedgerState.PURGING)
    dialect = pt.server_dialect(db)
    if _exists(db, holding):
        db.execute(f"DROP TABLE {holding}")  # an empty leftover: recover() emptied or settled it
    show = db.query(f"SHOW CREATE TABLE {day.table}")[0]
    db.execute(pt.holding_sql(str(show["Create Table"]), day.table, holding))
    t_ex = time.perf_counter()
    try:
        _exchange(db, day.table, part.name, holding, dialect)
    except Exception as exc:  # the partition could not be taken (lock timeout...): chunks then
        run.log.warning("%s: exchanging partition %s failed (%s): purged by chunks", day.label, part.name, exc)
    timings.update(prepare=t_ex - began, exchange=time.perf_counter() - t_ex)
    return recover(run, day.table, day.day, timings)


def _exchange(db: Iotdb, table: str, partition: str, holding: str, dialect: str) -> None:
    run_ddl(db, pt.exchange_sql(table, partition, holding, dialect))


def recover(run: RunContext, table: str, day: str, timings: dict[str, float] | None = None) -> int | None:
    """Settle an attempt recorded in the ledger: rows purged (a finished drop) or None (undone)."""
    db, log = run.db, run.log
    entry = run.ledger.get(table, day)
    if entry is None or entry.manifest.drop is None:
        return None
    mark = entry.manifest.drop
    holding, label = mark["holding"], f"{table} {day}"
    if not _exists(db, holding):
        if entry.state != LedgerState.PURGED:
            _clear(db, entry)
        return None
    if entry.state == LedgerState.PURGED:
        db.execute(f"DROP TABLE {holding}")  # purged and recorded; only the drop was missing
        return None
    chunks = entry.manifest.chunks
    t_count = time.perf_counter()
    counts, outside = _per_chunk(db, holding, entry.manifest.date_column or "creationDate", chunks)
    taken = sum(counts) + outside
    if not taken:
        db.execute(f"DROP TABLE {holding}")
        _clear(db, entry)
        return None
    if not outside and all(n == c.rows for n, c in zip(counts, chunks, strict=True)):
        for c in chunks:
            c.purged = True
        entry.purged_rows += taken
        t_drop = time.perf_counter()
        with db.begin() as con:
            record_progress(con, entry, LedgerState.PURGED)
        db.execute(f"DROP TABLE {holding}")
        spent = {**(timings or {}), "count_held": t_drop - t_count, "ledger_and_drop": time.perf_counter() - t_drop}
        log.info("purged %s: %d row(s) by taking partition %s out of %s (exchange + drop of %s; %s)", label, taken,
                 mark["partition"], table, holding, ", ".join(f"{k} {v:.3f} s" for k, v in spent.items()))
        return taken
    from sqlalchemy import text  # lazy: sqlalchemy costs 124 ms at import (python -X importtime)

    entry.manifest.drop = None
    with db.begin() as con:  # rows back and attempt forgotten, atomically
        con.execute(text(f"INSERT INTO {table} SELECT * FROM {holding}"))
        con.execute(text(f"DELETE FROM {holding}"))
        record_progress(con, entry, entry.state)
    db.execute(f"DROP TABLE {holding}")
    log.warning("%s: partition %s held %d row(s) (%d outside the day), not the %d verified: the rows went back "
                "into %s; purged by chunks", label, mark["partition"], taken, outside, mark["rows"], table)
    return None


def _clear(db: Iotdb, entry: LedgerEntry) -> None:
    entry.manifest.drop = None
    with db.begin() as con:
        record_progress(con, entry, entry.state)


def recover_all(run: RunContext) -> int:
    """Settle every interrupted drop (the plan step calls this before planning)."""
    db = run.db
    if db.dialect != "mysql":
        return 0
    rows = db.query("SELECT tableName, day FROM ExportLedger WHERE manifest LIKE :m", m=f'%"{MARK}": {{%')
    settled = 0
    for r in rows:
        entry = run.ledger.get(r["tableName"], str(r["day"]))
        drop = entry.manifest.drop if entry is not None else None
        if entry is not None and drop is not None and (entry.state != LedgerState.PURGED
                                                       or _exists(db, drop["holding"])):
            recover(run, entry.table, entry.day)
            settled += 1
    return settled
