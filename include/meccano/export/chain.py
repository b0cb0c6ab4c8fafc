"""The four tasks of the export DAG as plain functions (the plugin's tasks call these):

``plan -> export -> verify -> purge``

Any task may run on any worker, on another host than the task before it: what a task needs comes
from XCom (the plan: partitions and options, as JSON), the ``ExportLedger`` in the IOTDB (each day's
manifest and purge chunks) and the target, never from a worker's disk. The only local files are the
export task's own part files, written, uploaded and removed within that one task
(:mod:`meccano.export.staging`); a retried export writes them again (safe: nothing of the run is
purged before verify). Every task can fail and be retried alone, and any later run picks up what an
earlier one left.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meccano.errors import ExportError, VerifyError
from meccano.export.ledger import Ledger, LedgerEntry
from meccano.export.model import Manifest, Part, Partition
from meccano.export.options import ExportOptions, load_options
from meccano.export.partition_purge import recover_all
from meccano.export.plan import plan
from meccano.export.purge import purge_partition
from meccano.export.reconcile import reconcile_day
from meccano.export.staging import work_folder
from meccano.export.target import day_dir, local_target_problem, preflight, target_root, target_url
from meccano.export.upload import check_target_unknown, upload_day
from meccano.export.verify import verify_partition
from meccano.export.write import scan_groups, write_days
from meccano.fleet.clock import reference_time
from meccano.iotdb.db import Iotdb
from meccano.settings.config import Settings

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

__all__ = ["export_step", "plan_step", "purge_step", "target_url", "verify_step"]
log = logging.getLogger("meccano.export")


def _partitions(planned: dict[str, Any]) -> list[Partition]:
    return [Partition.from_json(p) for p in planned["partitions"]]


def plan_step(settings: Settings, db: Iotdb, conf: dict[str, Any], run_id: str,
              when: datetime | None = None, logger: logging.Logger = log) -> dict[str, Any]:
    options = load_options(settings, conf)
    problem = local_target_problem(settings)
    if problem:
        raise ExportError(problem)
    recover_all(db, logger)  # a partition drop interrupted by a crash is finished or undone first
    reference = reference_time(settings, when, db)
    partitions = plan(db, options, reference)
    logger.info("export to %s: %d partition(s) planned (%s)%s", target_url(settings), len(partitions),
                ", ".join(p.label for p in partitions) or "nothing older than the retention",
                " [dry run: nothing will be purged]" if options.dry_run else
                ("" if options.purge else " [EXPORT_PURGE=false: nothing will be purged]"))
    return {"run_id": run_id, "reference": reference.isoformat(), "options": options.to_json(),
            "partitions": [p.to_json() for p in partitions]}


def export_step(settings: Settings, db: Iotdb, planned: dict[str, Any],
                logger: logging.Logger = log) -> dict[str, Any]:
    """Write, upload and record every planned day; the local part files live only inside this call."""
    partitions = _partitions(planned)
    if not partitions:
        return {"partitions": []}
    options = ExportOptions.from_json(planned["options"])
    run_id = planned["run_id"]
    preflight(settings)
    root = target_root(settings)

    def folder_of(p: Partition) -> ObjectStoragePath:
        return day_dir(root, p.prefix, p.day)

    ledger = Ledger(db)
    for p in partitions:  # before anything of this run is written
        if ledger.get(p.table, p.day) is None:
            check_target_unknown(settings, p, folder_of(p), run_id)
    out: list[dict[str, Any]] = []
    with work_folder(settings, run_id, logger) as work:
        for group in scan_groups(partitions):
            out += _export_group(settings, db, group, options, run_id, work, folder_of, logger)
    return {"partitions": out}


def _export_group(settings: Settings, db: Iotdb, group: list[Partition], options: ExportOptions, run_id: str,
                  work: Path, folder_of: Callable[[Partition], ObjectStoragePath],
                  logger: logging.Logger) -> list[dict[str, Any]]:
    """One scan group: written, uploaded, recorded; its local files removed whatever happens."""
    ledger = Ledger(db)

    def local(p: Partition) -> Path:
        return work / p.table / p.day

    try:
        if group[0].mode == "reconcile":
            p = group[0]
            previous = ledger.get(p.table, p.day)
            manifest, new = reconcile_day(db, p, options, local(p), run_id, logger, previous, folder_of(p))
            upload_day(settings, p, local(p), folder_of(p), manifest, new, logger)
            # recorded only now: a retry before this line starts again from the same base
            assert previous is not None
            ledger.put(LedgerEntry(p.table, p.day, "uploaded", run_id, manifest, previous.purged_rows))
            return [_summary(p, manifest, new)]
        _refuse_purged(ledger, group)
        manifests = write_days(db, group, options, local, run_id, logger)
        out = []
        for p, manifest in zip(group, manifests, strict=True):
            # recorded before the upload: the ledger then knows the day if the upload dies half-way
            ledger.put(LedgerEntry(p.table, p.day, "exported", run_id, manifest, 0))
            upload_day(settings, p, local(p), folder_of(p), manifest, manifest.parts, logger)
            ledger.set_state(p.table, p.day, "uploaded")
            out.append(_summary(p, manifest, manifest.parts))
        return out
    finally:
        for p in group:
            shutil.rmtree(local(p), ignore_errors=True)


def _refuse_purged(ledger: Ledger, group: list[Partition]) -> None:
    for p in group:
        previous = ledger.get(p.table, p.day)
        if previous is not None and previous.has_purged:
            raise ExportError(f"{p.label}: part of this day was already purged; a full re-export "
                              "would drop rows from the target. Re-run the plan task (it picks reconcile mode)")


def _summary(p: Partition, manifest: Manifest, new: list[Part]) -> dict[str, Any]:
    return {"table": p.table, "day": p.day, "rows": manifest.rows, "new_parts": [part.key for part in new]}


def verify_step(settings: Settings, db: Iotdb, planned: dict[str, Any], logger: logging.Logger = log) -> dict[str, Any]:
    run_id = planned["run_id"]
    partitions = _partitions(planned)
    if not partitions:
        return {"verified": 0}
    preflight(settings)
    root = target_root(settings)
    problems: list[str] = []
    for p in partitions:
        problems += verify_partition(db, settings, p, day_dir(root, p.prefix, p.day), run_id, logger)
    if problems:
        raise VerifyError("verification failed, nothing purged:\n" + "\n".join(f"- {m}" for m in problems))
    return {"verified": len(partitions)}


def purge_step(settings: Settings, db: Iotdb, planned: dict[str, Any], logger: logging.Logger = log,
               after_chunk: Any = None) -> dict[str, Any]:
    options = ExportOptions.from_json(planned["options"])
    if not options.purging:
        why = "dry run" if options.dry_run else "EXPORT_PURGE is false"
        logger.info("purge skipped (%s): the exported rows stay in the database", why)
        return {"purged": 0, "skipped": why}
    total = 0
    for p in _partitions(planned):
        total += purge_partition(db, p, planned["run_id"], logger, after_chunk)
    return {"purged": total}
