"""cleanMessages: delete delivered TRANSIENT messages and every message older than
``maxAgeDays`` (by ``creationDate``, DB clock).

* TRANSIENT with ``readDate`` set (delivered): deleted at once.
* Any message (TRANSIENT or PERSISTENT, read or not) created before ``now - maxAgeDays``:
  deleted. A PERSISTENT message is therefore never deleted before its age.

Deletes run in batches of ``batchSize`` IDs (one short transaction each) so that the
gateway's reads and writes of ``Messages`` are never blocked for long; a failed run
leaves whole batches done and its retry continues where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from meccano.fleet.options import read_options
from meccano.iotdb.clock import db_now, param
from meccano.iotdb.db import Iotdb
from meccano.settings.config import Settings

SELECT_SQL = """SELECT ID FROM Messages
WHERE (delivery_type = 'TRANSIENT' AND readDate IS NOT NULL) OR creationDate < :cutoff
ORDER BY ID LIMIT :limit"""


@dataclass(frozen=True)
class CleanRun:
    cutoff: datetime
    deleted: int


def clean_messages(db: Iotdb, settings: Settings, params: dict[str, Any] | None = None,
                   now: datetime | None = None) -> CleanRun:
    opts = read_options("cleanMessages", settings, params)
    cutoff = (now or db_now(db)) - timedelta(days=opts["maxAgeDays"])
    deleted = 0
    while True:
        ids = [r["ID"] for r in db.query(SELECT_SQL, cutoff=param(db, cutoff), limit=opts["batchSize"])]
        if not ids:
            return CleanRun(cutoff, deleted)
        binds = {f"i{k}": v for k, v in enumerate(ids)}
        deleted += db.execute("DELETE FROM Messages WHERE ID IN (" + ", ".join(f":{k}" for k in binds) + ")",
                              **binds)
