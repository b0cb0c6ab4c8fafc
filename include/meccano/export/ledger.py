"""The export ledger (``ExportLedger`` table in the IOTDB): one row per (table, day).

It lives in the same database as the rows it describes, so a purge chunk and the ledger's
record of it commit in one transaction: after any crash the ledger says exactly which
ranges of a day are gone from the database (and so exist only in the target).

States (:class:`LedgerState`, stored as their text): ``exported`` (a full export's parts written and being
uploaded by the export task) -> ``uploaded`` (parts + manifest in the target) -> ``verified`` -> ``purging``
(some chunks deleted) -> ``purged``. The manifest kept here (:class:`~meccano.export.model.Manifest`, with its
purge chunks) is everything the later tasks need: none of them reads a file an earlier task left on its worker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from meccano.export.model import Manifest
from meccano.iotdb.db import Iotdb


class LedgerState(StrEnum):
    """Where a table-day stands in the chain (the ``state`` column holds the value)."""

    EXPORTED = "exported"
    UPLOADED = "uploaded"
    VERIFIED = "verified"
    PURGING = "purging"
    PURGED = "purged"


@dataclass
class LedgerEntry:
    """One ``ExportLedger`` row: a table-day's state, the run that left it, its manifest and purged rows."""

    table: str
    day: str
    state: LedgerState
    run_id: str
    manifest: Manifest
    purged_rows: int = 0

    @property
    def rows(self) -> int:
        return self.manifest.rows

    @property
    def has_purged(self) -> bool:
        """Some rows of this day were deleted: the target holds data the database no longer has."""
        return self.purged_rows > 0 or any(c.purged for c in self.manifest.chunks)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


_PROGRESS = ("UPDATE ExportLedger SET state = :s, purgedRows = :p, manifest = :m, updatedAt = :u "
             "WHERE tableName = :t AND day = :d")


def record_progress(con: Any, entry: LedgerEntry, state: LedgerState) -> None:
    """Write ``entry``'s purge progress (``state``, purged rows, the manifest with its chunks and any drop
    under way) inside ``con``'s transaction: a purge's ``DELETE`` and the ledger's record of it commit together."""
    from sqlalchemy import text  # lazy: sqlalchemy costs 127 ms at import (python -X importtime)

    con.execute(text(_PROGRESS), {"s": LedgerState(state).value, "p": entry.purged_rows,
                                  "m": json.dumps(entry.manifest.to_json()), "u": datetime.now(UTC).isoformat(),
                                  "t": entry.table, "d": entry.day})


class Ledger:
    """The ``ExportLedger`` rows of the IOTDB."""

    def __init__(self, db: Iotdb) -> None:
        self.db = db

    def get(self, table: str, day: str) -> LedgerEntry | None:
        rows = self.db.query("SELECT state, runId, purgedRows, manifest FROM ExportLedger "
                             "WHERE tableName = :t AND day = :d", t=table, d=day)
        if not rows or not rows[0]["manifest"]:
            return None
        r = rows[0]
        return LedgerEntry(table, day, LedgerState(r["state"]), r["runId"],
                           Manifest.from_json(json.loads(r["manifest"])), int(r["purgedRows"]))

    def of_run(self, table: str, day: str, run_id: str,
               states: tuple[LedgerState, ...]) -> tuple[LedgerEntry | None, str]:
        """The entry if this run left it in one of ``states``, else None; and its state for messages."""
        entry = self.get(table, day)
        state = entry.state if entry else "none"
        if entry is None or entry.run_id != run_id or entry.state not in states:
            return None, state
        return entry, state

    def put(self, entry: LedgerEntry, con: Any = None) -> None:
        """Insert or replace the entry (inside ``con``'s transaction when given)."""
        from sqlalchemy import text  # lazy: sqlalchemy costs 127 ms at import (python -X importtime)

        params = {"t": entry.table, "d": entry.day, "s": LedgerState(entry.state).value, "r": entry.run_id,
                  "n": entry.rows, "p": entry.purged_rows, "m": json.dumps(entry.manifest.to_json()), "u": _now()}
        statements = [
            "DELETE FROM ExportLedger WHERE tableName = :t AND day = :d",
            "INSERT INTO ExportLedger (tableName, day, state, runId, rowCount, purgedRows, manifest, updatedAt) "
            "VALUES (:t, :d, :s, :r, :n, :p, :m, :u)",
        ]
        if con is not None:
            for sql in statements:
                con.execute(text(sql), params)
            return
        with self.db.begin() as own:
            for sql in statements:
                own.execute(text(sql), params)

    def set_state(self, table: str, day: str, state: LedgerState) -> None:
        self.db.execute("UPDATE ExportLedger SET state = :s, updatedAt = :u WHERE tableName = :t AND day = :d",
                        s=LedgerState(state).value, u=_now(), t=table, d=day)
