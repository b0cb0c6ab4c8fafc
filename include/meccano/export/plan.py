"""Plan: the table-days older than the retention that still have rows, oldest first.

Day boundaries are computed here in Python and passed as parameters; each next day is
found with one index seek (``MIN(date) WHERE date >= :after``), so a large backlog costs
one seek per day, never a scan of the whole table.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from meccano.export.context import RunContext
from meccano.export.ledger import LedgerState
from meccano.export.model import Mode, TableDay
from meccano.export.options import TableSpec
from meccano.iotdb.clock import as_date
from meccano.iotdb.partitions import day_bounds

MAX_SKIPPED_DAYS = 100_000


def cutoff_day(reference: datetime, days: int) -> date:
    """Days strictly before this one are entirely older than ``days`` days at ``reference``."""
    return (reference - timedelta(days=days)).date()


def plan_table(run: RunContext, spec: TableSpec, reference: datetime) -> list[TableDay]:
    """At most ``max_days_per_run`` table-days of one table, oldest first."""
    cutoff = f"{cutoff_day(reference, spec.days).isoformat()} 00:00:00"
    seek = (f"SELECT MIN({spec.date_column}) FROM {spec.table} "
            f"WHERE {spec.date_column} >= :after AND {spec.date_column} < :cutoff")
    after = "0001-01-01 00:00:00"
    out: list[TableDay] = []
    for _ in range(MAX_SKIPPED_DAYS):
        if len(out) >= run.options.max_days_per_run:
            break
        first = run.db.scalar(seek, after=after, cutoff=cutoff)
        if first is None:
            break
        day = as_date(first)
        start, end = day_bounds(day)
        after = end
        entry = run.ledger.get(spec.table, day.isoformat())
        if not run.options.purging and entry is not None and entry.state == LedgerState.VERIFIED:
            continue  # already exported and verified; nothing to purge in this run
        mode = Mode.RECONCILE if entry is not None and entry.has_purged else Mode.FULL
        out.append(TableDay(spec.table, spec.date_column, spec.prefix, day.isoformat(), start, end, mode))
    return out


def plan(run: RunContext, reference: datetime) -> list[TableDay]:
    """Oldest first per table, at most ``max_days_per_run`` days per table."""
    out: list[TableDay] = []
    for spec in run.options.tables:
        out += plan_table(run, spec, reference)
    return out
