"""Operations on the daily partitions: the conversion plan, keeping partitions ahead, status.

Every DDL runs with a short ``lock_wait_timeout``: an ``ALTER`` waiting for a metadata lock
(behind a long read, e.g. an export snapshot) would queue every insert of the gateway behind
it, so it gives up after a few seconds and is retried, instead of stalling the writers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from meccano.errors import PartitionError
from meccano.iotdb import partitions as pt
from meccano.iotdb.clock import as_date, reference_time
from meccano.iotdb.db import Iotdb
from meccano.iotdb.ddl_progress import reporting

if TYPE_CHECKING:
    from meccano.settings.config import Settings

log = logging.getLogger("meccano.partitions")

DEFAULT_AHEAD = 14  # future daily partitions kept ready
MAX_DAILY = 1000  # older days go to p0 on conversion (they are purged by chunks)
DDL_LOCK_WAIT_S = 3
DDL_ATTEMPTS = 4
# Conversion speed measured by bench/bench_partitions.py on a busy machine (bench/README.md "Daily partitions").
# The copy rebuilds rows and indexes, so rows and bytes both give an estimate; the larger wins (conservative:
# the busy machine's rates, not an idle one's).
CONVERT_ROWS_PER_S = 60_000
CONVERT_BYTES_PER_S = 12_000_000


@dataclass
class ConversionPlan:
    table: str
    column: str
    dialect: str
    rows: int  # estimate (information_schema)
    data_bytes: int
    first_day: date
    last_day: date
    today: date
    older_rows: bool  # rows older than first_day exist (they stay in p0)
    sql: str = ""
    lock_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def table_size(db: Iotdb, table: str) -> tuple[int, int]:
    row = db.query("SELECT TABLE_ROWS AS r, DATA_LENGTH + INDEX_LENGTH AS b FROM INFORMATION_SCHEMA.TABLES "
                   "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t", t=table)
    if not row:
        raise PartitionError(f"table {table} does not exist in this IOTDB; run `python -m meccano db init`")
    return int(row[0]["r"] or 0), int(row[0]["b"] or 0)


CONVERT_FIXED_S = 2.0  # creating one file per partition, whatever the rows


def estimate_lock_seconds(rows: int, data_bytes: int) -> float:
    return CONVERT_FIXED_S + max(rows / CONVERT_ROWS_PER_S, data_bytes / CONVERT_BYTES_PER_S)


def _unique_keys_without(db: Iotdb, table: str, column: str) -> list[str]:
    """Unique keys that do not contain ``column``: partitioning would be refused (error 1503)."""
    rows = db.query("SELECT INDEX_NAME AS i, GROUP_CONCAT(COLUMN_NAME) AS cols FROM INFORMATION_SCHEMA.STATISTICS "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t AND NON_UNIQUE = 0 GROUP BY INDEX_NAME",
                    t=table)
    return [str(r["i"]) for r in rows if column not in str(r["cols"]).split(",")]


def plan_conversion(db: Iotdb, table: str, column: str, today: date, ahead: int = DEFAULT_AHEAD) -> ConversionPlan:
    if db.dialect != "mysql":
        raise PartitionError("partitions need a MySQL/MariaDB IOTDB; the embedded SQLite demo has none")
    layout = pt.inspect(db, table)
    if layout.partitioned:
        raise PartitionError(
            f"{table} is already partitioned ({layout.method} {layout.expression}, {len(layout.parts)} partitions); "
            "`python -m meccano db check` shows its state")
    bad = _unique_keys_without(db, table, column)
    if bad:
        raise PartitionError(f"{table} has unique key(s) {', '.join(bad)} without {column}: MySQL/MariaDB refuse "
                                f"to partition it by {column}")
    rows, size = table_size(db, table)
    oldest = db.scalar(f"SELECT MIN({column}) FROM {table}")
    first = as_date(oldest) if oldest is not None else today
    first = min(first, today)
    older = False
    if (today - first).days > MAX_DAILY:
        first, older = today - timedelta(days=MAX_DAILY), True
    last = today + timedelta(days=ahead)
    days = pt.daily_bounds(db, first, last)
    first_start = pt.day_starts(db, [first])[first]
    dialect = pt.server_dialect(db)
    plan = ConversionPlan(table, column, dialect, rows, size, first, last, today, older)
    plan.sql = pt.partition_by_sql(table, column, first_start, days, dialect)
    plan.lock_seconds = estimate_lock_seconds(rows, size)
    if older:
        plan.notes.append(f"rows older than {first} stay together in partition {pt.BEFORE}: those days are purged "
                          "by chunks, as today")
    return plan


def describe(plan: ConversionPlan, database: str) -> str:
    secs = plan.lock_seconds
    lines = [
        f"Convert {plan.table} ({plan.dialect}, about {plan.rows:,} rows, {plan.data_bytes / 1e6:,.0f} MB) to daily "
        f"RANGE partitions on UNIX_TIMESTAMP({plan.column}):",
        f"  {pt.BEFORE}: rows before {plan.first_day}; one partition per day {plan.first_day} .. {plan.last_day} "
        f"({(plan.last_day - plan.first_day).days + 1} partitions, {(plan.last_day - date.today()).days} ahead); "
        f"{pt.CATCH_ALL}: the catch-all (MAXVALUE).",
        "  Day boundaries: the export's days (the same start/end it selects by), as epochs of this session.",
        f"Lock: the server copies the whole table (ALGORITHM=COPY, LOCK=SHARED): reads go on, the gateway's "
        f"INSERTs wait for about {secs:,.0f} s ({secs / 60:,.1f} min) at the rate measured on the benchmark machine "
        f"({CONVERT_ROWS_PER_S:,} rows/s, {CONVERT_BYTES_PER_S / 1e6:.0f} MB/s; a slower server takes longer). "
        "It also needs free disk for a second copy of the table.",
        "Online instead: pt-online-schema-change copies in chunks while writes go on, but it refuses tables "
        "without a PRIMARY KEY or UNIQUE index (its triggers need one) and Facts has neither. Either accept "
        "the lock above in a quiet hour, or convert a replica and switch "
        "over, or add a key first, e.g.:",
        "  " + pt.pt_osc_command(database, plan.table, plan.sql),
        f"Undo: {pt.remove_sql(plan.table)} (copies the table back, the same lock time).",
        *plan.notes,
    ]
    return "\n".join(lines)


def run_ddl(db: Iotdb, sql: str, lock_wait_s: int = DDL_LOCK_WAIT_S, attempts: int = DDL_ATTEMPTS,
            logger: logging.Logger = log, on_start: Callable[[int], None] | None = None) -> None:
    """One DDL statement; gives up waiting for a metadata lock after ``lock_wait_s`` and retries.
    ``on_start`` is told the session's id before the statement runs (to watch its progress)."""
    from sqlalchemy import text  # lazy: sqlalchemy costs 142 ms at import (python -X importtime)
    from sqlalchemy.exc import OperationalError  # lazy: sqlalchemy.exc costs 117 ms at import (python -X importtime)

    for attempt in range(1, attempts + 1):
        # autocommit: in a session with autocommit off, MariaDB 10.11's EXCHANGE PARTITION waits on its own
        # validation read of the holding table until innodb_lock_wait_timeout (seen here, 10.11.19)
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as con:
            con.execute(text(f"SET SESSION lock_wait_timeout = {int(lock_wait_s)}"))
            if on_start is not None:
                on_start(int(con.execute(text("SELECT CONNECTION_ID()")).scalar_one()))
            try:
                con.exec_driver_sql(sql.replace("%", "%%"))
                return
            except OperationalError as exc:
                orig = exc.orig  # the driver's error (None only for errors SQLAlchemy raised itself)
                if "1205" not in str(orig.args[0] if orig is not None and orig.args else "") or attempt == attempts:
                    raise
                logger.warning("%s: waited %d s for a metadata lock (a long transaction reads the table); "
                               "retrying (%d/%d)", sql.split("(")[0][:60], lock_wait_s, attempt, attempts)
        time.sleep(attempt)


def convert(db: Iotdb, plan: ConversionPlan, lock_wait_s: int = 30, out: Callable[[str], None] | None = None,
            every: float = 10.0) -> float:
    """Run the conversion; returns the seconds it took. With ``out``, a progress line every ``every`` seconds."""
    began = time.monotonic()
    if out is None:
        run_ddl(db, plan.sql, lock_wait_s=lock_wait_s, attempts=2)
    else:
        with reporting(db, f"converting {plan.table}", out, every) as on_start:
            run_ddl(db, plan.sql, lock_wait_s=lock_wait_s, attempts=2, on_start=on_start)
    return time.monotonic() - began


@dataclass
class Status:
    table: str
    partitioned: bool
    by_day: bool = False
    partitions: int = 0
    ahead: int = 0
    last_day: date | None = None
    catch_all_rows: int = 0
    problems: list[str] = field(default_factory=list)

    def text(self) -> str:
        if not self.partitioned:
            return (f"{self.table}: not partitioned (purged by chunks; `python -m meccano db partition` "
                    "converts it to daily partitions, see docs/export.md)")
        head = (f"{self.table}: partitioned by day, {self.partitions} partitions, {self.ahead} future day(s) ahead"
                f"{f' (through {self.last_day})' if self.last_day else ''}") if self.by_day else \
            f"{self.table}: partitioned, but not by day of its date column: the purge deletes by chunks"
        return "\n".join([head, *(f"WARNING: {p}" for p in self.problems)])


def status(db: Iotdb, table: str, column: str, today: date, min_ahead: int = 2) -> Status:
    layout = pt.inspect(db, table)
    st = Status(table, layout.partitioned, layout.by_day_of(column), len(layout.parts))
    if not st.by_day:
        return st
    tomorrow = today + timedelta(days=1)
    st.ahead = layout.ahead(pt.day_starts(db, [tomorrow])[tomorrow])
    named = [d for d in (pt.name_day(p.name) for p in layout.parts) if d]
    st.last_day = max(named) if named else None
    if layout.catch_all is not None:
        st.catch_all_rows = int(db.scalar(f"SELECT COUNT(*) FROM {table} PARTITION ({pt.CATCH_ALL})") or 0)
    if st.ahead < min_ahead:
        st.problems.append(f"only {st.ahead} future partition(s) left: the factsPartitions DAG should add more "
                           "(is it paused or failing?)")
    if st.catch_all_rows:
        st.problems.append(f"{st.catch_all_rows} row(s) in the catch-all {pt.CATCH_ALL}: the factsPartitions DAG "
                           "splits it on its next run")
    return st


@dataclass
class Maintenance:
    added: list[str] = field(default_factory=list)
    moved_rows: int = 0
    skipped: str = ""


def keep_ahead(db: Iotdb, table: str, column: str, today: date, ahead: int = DEFAULT_AHEAD,
               logger: logging.Logger = log) -> Maintenance:
    """Add daily partitions up to ``today + ahead`` (and up to the newest row in the catch-all,
    at most a year ahead) by splitting the catch-all; rows already in it move to their day."""

    out = Maintenance()
    if db.dialect != "mysql":
        out.skipped = "the IOTDB is SQLite (no partitions)"
        return out
    layout = pt.inspect(db, table)
    if not layout.by_day_of(column):
        out.skipped = f"{table} is not partitioned by day (opt-in: python -m meccano db partition)"
        return out
    if layout.catch_all is None:
        out.skipped = f"{table} has no catch-all partition {pt.CATCH_ALL}; nothing to split"
        return out
    named = sorted(d for d in (pt.name_day(p.name) for p in layout.parts) if d)
    target = today + timedelta(days=ahead)
    caught = int(db.scalar(f"SELECT COUNT(*) FROM {table} PARTITION ({pt.CATCH_ALL})") or 0)
    if caught:
        newest = as_date(db.scalar(f"SELECT MAX({column}) FROM {table} PARTITION ({pt.CATCH_ALL})"))
        if newest > today + timedelta(days=366):
            logger.warning("%s: rows dated up to %s sit in %s; partitions are added only up to a year ahead",
                           table, newest, pt.CATCH_ALL)
        target = max(target, min(newest, today + timedelta(days=366)))
    start = (named[-1] + timedelta(days=1)) if named else today
    if start > target:
        return out
    edge = layout.last_bound
    days = [(n, e) for n, e in pt.daily_bounds(db, start, target) if edge is None or e > edge]
    if not days:
        return out
    pt_sql = pt.reorganize_catch_all_sql(table, days, pt.server_dialect(db))
    began = time.monotonic()
    run_ddl(db, pt_sql, logger=logger)
    out.added, out.moved_rows = [n for n, _ in days], caught
    logger.info("%s: added %d daily partition(s) %s..%s in %.2f s%s", table, len(days), days[0][0], days[-1][0],
                time.monotonic() - began, f"; {caught} row(s) moved out of {pt.CATCH_ALL}" if caught else "")
    return out


# --- the CLI's side (python -m meccano db partition / db check) ---------------------------------

FACTS, FACTS_DATE = "Facts", "creationDate"


def today_of_export(settings: Settings) -> date:
    """Today as the export counts days (its reference time in the configured zone)."""

    return reference_time(settings, None).date()


def partition_command(db: Iotdb, settings: Settings, confirm: Callable[[], bool], dry_run: bool, ahead: int,
                      out: Callable[[str], None] = print) -> int:
    """Print the plan; ``dry_run`` prints the SQL and stops; else the conversion runs once ``confirm()``
    (``--yes`` or the operator's answer) says so. Exit code: 1 when refused or not possible."""
    try:
        plan = plan_conversion(db, FACTS, FACTS_DATE, today_of_export(settings), ahead)
    except PartitionError as exc:
        out(f"db partition: {exc}")
        return 1
    database = str(db.scalar("SELECT DATABASE()"))
    out(describe(plan, database))
    if dry_run:
        out("\n-- SQL (not run; dry run: nothing was changed):\n" + plan.sql + ";")
        return 0
    if not confirm():
        return 1
    out(f"\nConverting {plan.table} (one ALTER TABLE; a line on its progress every 10 s) ...")
    seconds = convert(db, plan, out=out)
    out(f"done in {seconds:,.1f} s")
    out(status(db, FACTS, FACTS_DATE, today_of_export(settings)).text())
    return 0


def check_lines(db: Iotdb, settings: Settings) -> tuple[list[str], bool]:
    """``db check``'s partition lines, and whether they are a problem."""
    if db.dialect != "mysql":
        return [f"{FACTS}: SQLite IOTDB, no partitions (purged by chunks)"], False
    st = status(db, FACTS, FACTS_DATE, today_of_export(settings))
    return [st.text()], bool(st.problems)
