"""The six steps of the export DAG as plain functions (the plugin's tasks call these).

Each step takes what the previous ones returned (XCom, JSON) and returns JSON. All state
that matters for a re-run lives in the ledger and the target, never only in XCom: any step
can fail and retry alone, and any later run picks up what an earlier one left.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from meccano.config import Settings
from meccano.export.cleanup import cleanup_run, partition_staging
from meccano.export.errors import VerifyError
from meccano.export.ledger import Ledger
from meccano.export.options import ExportOptions, load_options
from meccano.export.plan import Partition, plan
from meccano.export.purge import purge_partition
from meccano.export.target import day_dir, preflight, target_root, target_url
from meccano.export.upload import upload_partition
from meccano.export.verify import verify_partition
from meccano.export.write import export_partitions
from meccano.fleet.clock import db_wall_time
from meccano.iotdb.db import Iotdb
from meccano.zone import fleet_zone

__all__ = ["target_url"]
log = logging.getLogger("meccano.export")


def _partitions(planned: dict[str, Any]) -> list[Partition]:
    return [Partition(**p) for p in planned["partitions"]]


def reference_time(settings: Settings, when: datetime | None, db: Iotdb | None = None) -> datetime:
    """The run's 'now' on the IOTDB's clock (naive, like ``creationDate``).

    A day of the export and the purge is the database's local day, as in the original;
    without ``db``, the configured zone's (an unknown zone is a configuration error).
    """
    moment = when or datetime.now(UTC)
    if moment.tzinfo is None:
        return moment
    if db is not None:
        return db_wall_time(db, moment)
    return moment.astimezone(fleet_zone(settings.timezone)).replace(tzinfo=None)


def plan_step(settings: Settings, db: Iotdb, conf: dict[str, Any], run_id: str,
              when: datetime | None = None, logger: logging.Logger = log) -> dict[str, Any]:
    options = load_options(settings, conf)
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
    options = ExportOptions.from_json(planned["options"])
    run_id = planned["run_id"]
    partitions = _partitions(planned)
    root = target_root(settings) if any(p.mode == "reconcile" for p in partitions) else None
    known = {}
    for p in partitions:
        previous = Ledger(db).get(p.table, p.day)
        known[p] = previous is not None and previous.run_id != run_id

    def staging(p: Partition) -> Path:
        return partition_staging(settings, run_id, p.table, p.day)

    manifests = export_partitions(db, partitions, options, staging, run_id, logger,
                                  lambda p: day_dir(root, p.prefix, p.day) if root is not None else None)
    out = []
    for p, manifest in zip(partitions, manifests, strict=True):
        new = [part["key"] for part in manifest["parts"] if (staging(p) / part["key"]).is_file()]
        out.append({"table": p.table, "day": p.day, "rows": manifest["rows"], "new_parts": new,
                    "known_before": known[p]})
    return {"partitions": out}


def upload_step(settings: Settings, db: Iotdb, planned: dict[str, Any], exported: dict[str, Any],
                logger: logging.Logger = log) -> dict[str, Any]:
    run_id = planned["run_id"]
    if planned["partitions"]:
        preflight(settings)
    root = target_root(settings) if planned["partitions"] else None
    done = 0
    for p, e in zip(_partitions(planned), exported["partitions"], strict=True):
        assert root is not None
        upload_partition(db, settings, p, partition_staging(settings, run_id, p.table, p.day),
                         day_dir(root, p.prefix, p.day), run_id, e["new_parts"], logger, e["known_before"])
        done += 1
    return {"uploaded": done}


def verify_step(settings: Settings, db: Iotdb, planned: dict[str, Any], logger: logging.Logger = log) -> dict:
    run_id = planned["run_id"]
    if planned["partitions"]:
        preflight(settings)
    root = target_root(settings) if planned["partitions"] else None
    problems: list[str] = []
    for p in _partitions(planned):
        assert root is not None
        problems += verify_partition(db, settings, p, day_dir(root, p.prefix, p.day), run_id, logger)
    if problems:
        raise VerifyError("verification failed, nothing purged:\n" + "\n".join(f"- {m}" for m in problems))
    return {"verified": len(planned["partitions"])}


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


def cleanup_step(settings: Settings, planned: dict[str, Any], logger: logging.Logger = log) -> dict[str, Any]:
    removed = cleanup_run(settings, planned["run_id"])
    logger.info("local staging files of run %s %s", planned["run_id"], "removed" if removed else "already gone")
    return {"removed": removed}


def run_all(settings: Settings, db: Iotdb, conf: dict[str, Any] | None = None, run_id: str = "manual",
            when: datetime | None = None) -> dict[str, Any]:
    """All steps in order in this process (CLI, tests, benchmarks)."""
    planned = plan_step(settings, db, conf or {}, run_id, when)
    exported = export_step(settings, db, planned)
    upload_step(settings, db, planned, exported)
    verify_step(settings, db, planned)
    purged = purge_step(settings, db, planned)
    cleanup_step(settings, planned)
    return {"partitions": len(planned["partitions"]), "rows": sum(e["rows"] for e in exported["partitions"]),
            **purged}
