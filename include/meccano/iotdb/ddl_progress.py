"""How far a long DDL statement has come, read from another session while it runs.

``db partition --yes`` runs one ``ALTER TABLE Facts PARTITION BY ...``: on a large table it copies every
row and takes minutes with nothing to show. MariaDB reports a running statement's stage and percentage in
``information_schema.PROCESSLIST`` (``STAGE``, ``MAX_STAGE``, ``PROGRESS``); MySQL 8 has no such columns
there, so only the thread's state and elapsed time are shown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from meccano.iotdb.db import Iotdb

_MARIADB = "SELECT STAGE, MAX_STAGE, PROGRESS, STATE FROM information_schema.PROCESSLIST WHERE ID = :id"
_ANY = "SELECT NULL AS STAGE, NULL AS MAX_STAGE, NULL AS PROGRESS, STATE FROM information_schema.PROCESSLIST " \
       "WHERE ID = :id"


def progress_line(db: Iotdb, session_id: int, what: str, elapsed: float) -> str | None:
    """One line on the session's statement (None when the session runs nothing any more)."""
    try:
        rows = db.query(_MARIADB, id=session_id)
    except Exception:  # noqa: BLE001 - MySQL: no STAGE/PROGRESS columns
        rows = db.query(_ANY, id=session_id)
    if not rows:
        return None
    row = {k.upper(): v for k, v in rows[0].items()}
    parts = [f"{what}: {elapsed:,.0f} s"]
    if row.get("MAX_STAGE"):
        parts.append(f"stage {row['STAGE']} of {row['MAX_STAGE']}, {float(row['PROGRESS'] or 0):.1f} %")
    if row.get("STATE"):
        parts.append(str(row["STATE"]))
    return ", ".join(parts)


@contextmanager
def reporting(db: Iotdb, what: str, out: Callable[[str], None], every: float = 10.0) -> Iterator[Callable[[int], None]]:
    """A context whose value is told the session id of the statement once it starts; until the context
    ends, a line on that statement is given to ``out`` every ``every`` seconds."""
    started = threading.Event()
    done = threading.Event()
    session: list[int] = []
    began = time.monotonic()

    def watch() -> None:
        if not started.wait(timeout=None) or done.is_set():
            return
        while not done.wait(every):
            line = progress_line(db, session[0], what, time.monotonic() - began)
            if line:
                out(line)

    watcher = threading.Thread(target=watch, name="ddl-progress", daemon=True)
    watcher.start()

    def on_start(session_id: int) -> None:
        session[:] = [session_id]
        started.set()

    try:
        yield on_start
    finally:
        done.set()
        started.set()
        watcher.join(timeout=every + 5)
