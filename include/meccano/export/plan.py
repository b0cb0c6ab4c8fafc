"""Plan: the day partitions older than the retention that still have rows, oldest first.

Day boundaries are computed here in Python and passed as parameters; each next day is
found with one index seek (``MIN(date) WHERE date >= :after``), so a large backlog costs
one seek per day, never a scan of the whole table.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from meccano.export.ledger import Ledger
from meccano.export.model import Partition
from meccano.export.options import ExportOptions, TableSpec
from meccano.fleet.clock import as_date
from meccano.iotdb.db import Iotdb

MAX_SKIPPED_DAYS = 100_000


def day_bounds(day: date) -> tuple[str, str]:
    return f"{day.isoformat()} 00:00:00", f"{(day + timedelta(days=1)).isoformat()} 00:00:00"


def cutoff_day(reference: datetime, days: int) -> date:
    """Days strictly before this one are entirely older than ``days`` days at ``reference``."""
    return (reference - timedelta(days=days)).date()


def plan_table(db: Iotdb, ledger: Ledger, spec: TableSpec, reference: datetime, limit: int,
               purging: bool) -> list[Partition]:
    cutoff = f"{cutoff_day(reference, spec.days).isoformat()} 00:00:00"
    seek = (f"SELECT MIN({spec.date_column}) FROM {spec.table} "
            f"WHERE {spec.date_column} >= :after AND {spec.date_column} < :cutoff")
    after = "0001-01-01 00:00:00"
    out: list[Partition] = []
    for _ in range(MAX_SKIPPED_DAYS):
        if len(out) >= limit:
            break
        first = db.scalar(seek, after=after, cutoff=cutoff)
        if first is None:
            break
        day = as_date(first)
        start, end = day_bounds(day)
        after = end
        entry = ledger.get(spec.table, day.isoformat())
        if not purging and entry is not None and entry.state == "verified":
            continue  # already exported and verified; nothing to purge in this run
        mode = "reconcile" if entry is not None and entry.has_purged else "full"
        out.append(Partition(spec.table, spec.date_column, spec.prefix, day.isoformat(), start, end, mode))
    return out


def plan(db: Iotdb, options: ExportOptions, reference: datetime) -> list[Partition]:
    """Oldest first per table, at most ``max_days_per_run`` days per table."""
    ledger = Ledger(db)
    out: list[Partition] = []
    for spec in options.tables:
        out += plan_table(db, ledger, spec, reference, options.max_days_per_run, options.purging)
    return out
