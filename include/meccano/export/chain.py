"""The four tasks of the export DAG as plain functions (the plugin's tasks call these):

``plan -> export -> verify -> purge``

Any task may run on any worker, on another host than the task before it: what a task needs comes
from XCom (the plan: table-days and options, as JSON), the ``ExportLedger`` in the IOTDB (each day's
manifest and purge chunks) and the target, never from a worker's disk. The only local files are the
export task's own part files, written, uploaded and removed within that one task
(:meth:`meccano.export.context.RunContext.work_folder`); a retried export writes them again (safe:
nothing of the run is purged before verify). Every task can fail and be retried alone, and any later
run picks up what an earlier one left.

Each task builds one :class:`~meccano.export.context.RunContext` and hands it down; the walk of the
export task: ``export_step`` -> ``write`` (full days) or ``reconcile`` (late rows) -> ``target``
(upload) -> ``ledger``.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy.exc import DBAPIError

from meccano.errors import ExportError, VerifyError
from meccano.export.context import RunContext, table_days
from meccano.export.ledger import LedgerEntry, LedgerState
from meccano.export.location import local_target_problem, target_url
from meccano.export.model import Manifest, Mode, Part, TableDay
from meccano.export.options import ExportOptions, load_options
from meccano.export.plan import plan
from meccano.export.purge import purge_day, recover_all
from meccano.export.reconcile import reconcile_day
from meccano.export.s3objects import PartStreams
from meccano.export.target import check_target_unknown, redacted
from meccano.export.verify import verify_days
from meccano.export.write import scan_groups, write_days
from meccano.iotdb.clock import reference_time
from meccano.iotdb.db import Iotdb
from meccano.settings.config import Settings

try:
    import MySQLdb  # type: ignore[import-untyped]

    IOTDB_ERRORS: tuple[type[BaseException], ...] = (DBAPIError, MySQLdb.MySQLError)
except ImportError:  # pragma: no cover - the mysql provider brings it
    IOTDB_ERRORS = (DBAPIError,)

__all__ = ["export_step", "plan_step", "purge_step", "verify_step"]
log = logging.getLogger("meccano.export")


def plan_step(settings: Settings, db: Iotdb, conf: dict[str, Any], run_id: str,
              when: datetime | None = None, logger: logging.Logger = log) -> dict[str, Any]:
    run = RunContext(settings, db, load_options(settings, conf), run_id, logger)
    problem = local_target_problem(settings)
    if problem:
        raise ExportError(problem)
    with iotdb_faults("plan", settings):
        recover_all(run)  # a partition drop interrupted by a crash is finished or undone first
        reference = reference_time(settings, when, db)
        days = plan(run, reference)
    options = run.options
    logger.info("export to %s: %d partition(s) planned (%s)%s", target_url(settings), len(days),
                ", ".join(p.label for p in days) or "nothing older than the retention",
                " [dry run: nothing will be purged]" if options.dry_run else
                ("" if options.purge else " [EXPORT_PURGE=false: nothing will be purged]"))
    return {"run_id": run_id, "reference": reference.isoformat(), "options": options.to_json(),
            "partitions": [p.to_json() for p in days]}


# What a lost IOTDB connection means at each step (the ledger and the purge's chunks commit together)
IOTDB_LOST = {
    "plan": "nothing was exported or purged; re-run",
    "export": "nothing was purged and the ledger does not count this attempt's days as uploaded; the task's "
              "retries (or a re-run) export them again",
    "verify": "nothing was purged; re-run (the days stay uploaded)",
    "purge": "every chunk purged so far is recorded with its rows (a chunk's DELETE and its ledger record commit "
             "together); the next run finishes the purge",
}


@contextmanager
def iotdb_faults(step: str, settings: Settings) -> Iterator[None]:
    """A database failure of ``step`` (a killed connection, a server restart or one that is down) as one
    :class:`ExportError` naming the cause and what it left, without the SQL, the secrets or a chained trace."""
    try:
        yield
    except IOTDB_ERRORS as exc:
        message = _iotdb_lost(step, exc, settings)
    else:
        return
    raise ExportError(message)


def _iotdb_lost(step: str, exc: BaseException, settings: Settings) -> str:
    cause = getattr(exc, "orig", None) or exc
    args = getattr(cause, "args", ())
    reason = " ".join(str(a) for a in args) if args else str(cause)
    return (f"{step}: the IOTDB connection failed ({type(cause).__name__}: {redacted(reason, settings)[:200]}); "
            f"{IOTDB_LOST[step]}")


def export_step(settings: Settings, db: Iotdb, planned: dict[str, Any],
                logger: logging.Logger = log) -> dict[str, Any]:
    """Write, upload and record every planned day; the local part files live only inside this call."""
    if not table_days(planned):
        return {"partitions": []}
    with iotdb_faults("export", settings):
        return _export(settings, db, planned, logger)


def _export(settings: Settings, db: Iotdb, planned: dict[str, Any], logger: logging.Logger) -> dict[str, Any]:
    run = RunContext.of_plan(settings, db, planned, logger)
    run.target.root  # noqa: B018 - made once, here, before the sender thread shares it
    # before the sender starts: its S3 client set-up (about 0.2 s of Python) would hold up these queries
    _refuse_purged(run, [day for day in run.days if day.mode != Mode.RECONCILE])
    # S3: the parts go up while they are written, and the target is prepared while the first rows are read
    streams = run.target.streams(partial(prepare_target, run))
    if streams is None:
        prepare_target(run)
    out: list[dict[str, Any]] = []
    try:
        with run.work_folder():
            for group in scan_groups(run.days):
                out += _export_group(run, group, streams)
    finally:
        if streams is not None:
            streams.abort()  # whatever is not complete (a failure, the time limit) never stays half-uploaded
    return {"partitions": out}


def prepare_target(run: RunContext) -> None:
    """Before anything of this run goes up: the bucket checked, days in the target the ledger does not know
    refused, the multipart uploads of attempts that died swept."""
    run.target.prepare()
    for day in run.days:
        if run.ledger.get(day.table, day.day) is None:
            check_target_unknown(run.target, day, run.run_id)
    run.target.sweep_uploads(run.days, run.log)


def _export_group(run: RunContext, group: list[TableDay], streams: PartStreams | None) -> list[dict[str, Any]]:
    """One scan group: written (its parts streamed to S3 meanwhile), uploaded, recorded; its local files removed
    whatever happens."""
    try:
        if group[0].mode == Mode.RECONCILE:
            if streams is not None:
                streams.ready()
            return [_export_late_rows(run, group[0])]
        manifests = write_days(run, group, streams)
        if streams is not None:
            streams.ready()
        out = []
        for day, manifest in zip(group, manifests, strict=True):
            # recorded before the manifest: the ledger then knows the day if the upload dies half-way
            run.ledger.put(LedgerEntry(day.table, day.day, LedgerState.EXPORTED, run.run_id, manifest, 0))
            run.target.upload_day(day, run.local(day), manifest, manifest.parts, run.log, streams)
            # the manifest as stored: its parts carry S3's checksums, which verify compares
            run.ledger.put(LedgerEntry(day.table, day.day, LedgerState.UPLOADED, run.run_id, manifest, 0))
            out.append(_summary(day, manifest, manifest.parts))
        return out
    finally:
        for day in group:
            shutil.rmtree(run.local(day), ignore_errors=True)


def _export_late_rows(run: RunContext, day: TableDay) -> dict[str, Any]:
    previous = run.ledger.get(day.table, day.day)
    manifest, new = reconcile_day(run, day, previous)
    run.target.upload_day(day, run.local(day), manifest, new, run.log)
    # recorded only now: a retry before this line starts again from the same base
    assert previous is not None
    run.ledger.put(LedgerEntry(day.table, day.day, LedgerState.UPLOADED, run.run_id, manifest,
                               previous.purged_rows))
    return _summary(day, manifest, new)


def _refuse_purged(run: RunContext, group: list[TableDay]) -> None:
    for day in group:
        previous = run.ledger.get(day.table, day.day)
        if previous is not None and previous.has_purged:
            raise ExportError(f"{day.label}: part of this day was already purged; a full re-export "
                              "would drop rows from the target. Re-run the plan task (it picks reconcile mode)")


def _summary(day: TableDay, manifest: Manifest, new: list[Part]) -> dict[str, Any]:
    return {"table": day.table, "day": day.day, "rows": manifest.rows, "new_parts": [part.key for part in new]}


def verify_step(settings: Settings, db: Iotdb, planned: dict[str, Any], logger: logging.Logger = log) -> dict[str, Any]:
    if not table_days(planned):
        return {"verified": 0}
    run = RunContext.of_plan(settings, db, planned, logger)
    with iotdb_faults("verify", settings):
        problems = verify_days(run, run.days)
    if problems:
        raise VerifyError("verification failed, nothing purged:\n" + "\n".join(f"- {m}" for m in problems))
    return {"verified": len(run.days)}


def purge_step(settings: Settings, db: Iotdb, planned: dict[str, Any], logger: logging.Logger = log,
               after_chunk: Any = None) -> dict[str, Any]:
    options = ExportOptions.from_json(planned["options"])
    if not options.purging:
        why = "dry run" if options.dry_run else "EXPORT_PURGE is false"
        logger.info("purge skipped (%s): the exported rows stay in the database", why)
        return {"purged": 0, "skipped": why}
    run = RunContext.of_plan(settings, db, planned, logger)
    total = 0
    with iotdb_faults("purge", settings):
        for day in run.days:
            total += purge_day(run, day, after_chunk)
    return {"purged": total}
