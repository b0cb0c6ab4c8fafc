"""Purge a verified partition in bounded chunks, each its own transaction.

Each chunk is one ``[from, to)`` date range of at most ``purgeChunkRows`` exported rows.
Its ``DELETE`` and the ledger's record of it commit together; the transaction is rolled
back when the ``DELETE`` would remove another number of rows than was exported and
verified for that range (a row arrived late in between), so a row that is not in the
target is never deleted. Deleting by exact ranges (instead of ``DELETE ... LIMIT n`` on a
table without a primary key) is what makes that check possible; each chunk still touches
at most ~``purgeChunkRows`` rows, so the gateway's inserts are never blocked for long.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from meccano.errors import ExportError, PurgeStopped
from meccano.export.ledger import Ledger, record_progress
from meccano.export.model import Partition
from meccano.export.partition_purge import drop_day
from meccano.export.progress import Progress
from meccano.iotdb.db import Iotdb


def purge_partition(db: Iotdb, partition: Partition, run_id: str, log: logging.Logger,
                    after_chunk: Callable[[int], None] | None = None) -> int:
    """Delete the verified rows of the partition; returns the rows deleted by this call."""
    from sqlalchemy import text

    dropped = drop_day(db, partition, run_id, log)  # a whole daily partition, when exact (issue 18)
    if dropped is not None:
        return dropped
    ledger = Ledger(db)
    entry, state = ledger.of_run(partition.table, partition.day, run_id, ("verified", "purging"))
    if entry is None:
        raise ExportError(f"{partition.label}: not verified by this run (ledger state "
                          f"{state}); nothing purged")
    manifest = entry.manifest
    chunks = manifest.chunks
    col = partition.date_column
    delete = text(f"DELETE FROM {partition.table} WHERE {col} >= :a AND {col} < :b")
    todo = [i for i, c in enumerate(chunks) if not c.purged]
    progress = Progress(log, f"purge {partition.label}", sum(chunks[i].rows for i in todo))
    deleted = 0
    for i in todo:
        chunk = chunks[i]
        with db.begin() as con:
            n = con.execute(delete, {"a": chunk.start, "b": chunk.end}).rowcount if chunk.rows else 0
            if n != chunk.rows:
                raise PurgeStopped(  # leaving the block rolls this chunk back
                    f"{partition.label}: purge stopped in [{chunk.start}, {chunk.end}): {n} row(s) there, "
                    f"{chunk.rows} exported; late rows arrived after verification. That chunk was rolled "
                    f"back; {deleted} row(s) purged so far. The next run exports the late rows and "
                    "finishes the purge")
            chunk.purged = True
            entry.purged_rows += n
            last = all(c.purged for c in chunks)
            record_progress(con, entry, "purged" if last else "purging")
        deleted += n
        progress.add(n)
        if after_chunk is not None:
            after_chunk(i)
    if not todo:
        ledger.set_state(partition.table, partition.day, "purged")
    progress.finish()
    return deleted
