"""How far a long DDL statement has come, read from another session while it runs.

``db partition --yes`` runs one ``ALTER TABLE Facts PARTITION BY ...``: on a large table it copies every
row and takes minutes with nothing to show. Two sources, by server flavour (:func:`server_flavour`):

* ``performance_schema`` stage events, on MySQL 8.4 (compose's IOTDB) and on MariaDB when the server runs
  with ``performance_schema=ON``: ``events_stages_current`` holds the statement's stage (``stage/sql/copy to
  tmp table`` for the copy) with ``WORK_COMPLETED`` of ``WORK_ESTIMATED`` rows. The stage instruments that
  report progress are on by default, the ``events_stages_current`` consumer is not: :func:`stage_events`
  turns it on for the statement's duration when the account may (``UPDATE`` on
  ``performance_schema.setup_consumers``) and puts it back after; else it says what to enable.
* MariaDB's own ``information_schema.PROCESSLIST`` columns ``STAGE``, ``MAX_STAGE``, ``PROGRESS`` (no
  performance_schema needed).

Where neither answers (MySQL without the consumer), the thread's state and the elapsed time are shown.
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
_STAGE = ("SELECT s.EVENT_NAME AS EVENT_NAME, s.WORK_COMPLETED AS WORK_COMPLETED, "
          "s.WORK_ESTIMATED AS WORK_ESTIMATED FROM performance_schema.events_stages_current s "
          "JOIN performance_schema.threads t ON t.THREAD_ID = s.THREAD_ID WHERE t.PROCESSLIST_ID = :id")
CONSUMER = "events_stages_current"
ENABLE_HINT = (f"UPDATE performance_schema.setup_consumers SET ENABLED = 'YES' WHERE NAME = '{CONSUMER}' "
               "(or performance-schema-consumer-events-stages-current=ON in the server's options)")


def server_flavour(db: Iotdb) -> str:
    """``mariadb`` or ``mysql`` (from ``VERSION()``: MariaDB says so in it); ``sqlite`` for the embedded IOTDB."""
    if db.dialect != "mysql":
        return db.dialect
    return "mariadb" if "mariadb" in str(db.scalar("SELECT VERSION()") or "").lower() else "mysql"


def _performance_schema_on(db: Iotdb) -> bool:
    try:
        return str(db.scalar("SELECT @@performance_schema")) in ("1", "ON")
    except Exception:  # noqa: BLE001 - a server without the variable has no performance_schema
        return False


def _consumer_on(db: Iotdb) -> bool | None:
    """Whether stage events are collected; None when the account may not read performance_schema."""
    try:
        enabled = db.scalar(f"SELECT ENABLED FROM performance_schema.setup_consumers WHERE NAME = '{CONSUMER}'")
        return str(enabled) == "YES"
    except Exception:  # noqa: BLE001 - no SELECT on performance_schema
        return None


def _set_consumer(db: Iotdb, on: bool) -> bool:
    try:
        db.execute(f"UPDATE performance_schema.setup_consumers SET ENABLED = '{'YES' if on else 'NO'}' "
                   f"WHERE NAME = '{CONSUMER}'")
        return True
    except Exception:  # noqa: BLE001 - no UPDATE on setup_consumers: progress falls back, and says so
        return False


@contextmanager
def stage_events(db: Iotdb, out: Callable[[str], None]) -> Iterator[bool]:
    """Stage events collected while the context runs, when the server and the account allow it: yields whether
    they are. A consumer this turned on is turned off again at the end (a runtime setting, never persisted)."""
    if db.dialect != "mysql" or not _performance_schema_on(db):
        yield False
        return
    on = _consumer_on(db)
    if on:
        yield True
        return
    if on is None or not _set_consumer(db, True):
        out(f"progress: performance_schema stage events are off and this account may not turn them on; "
            f"for a percentage next time: {ENABLE_HINT}")
        yield False
        return
    try:
        yield True
    finally:
        _set_consumer(db, False)


def _stage_part(db: Iotdb, session_id: int) -> str | None:
    try:
        rows = db.query(_STAGE, id=session_id)
    except Exception:  # noqa: BLE001 - performance_schema not readable: the other source speaks
        return None
    if not rows:
        return None
    row = {k.upper(): v for k, v in rows[0].items()}
    name = str(row["EVENT_NAME"]).rsplit("/", 1)[-1]
    done, total = row.get("WORK_COMPLETED"), row.get("WORK_ESTIMATED")
    if total:
        return f"{name}: {float(done or 0) / float(total) * 100:.1f} % ({int(done or 0):,} of {int(total):,} rows)"
    return name


def progress_line(db: Iotdb, session_id: int, what: str, elapsed: float, flavour: str = "mysql",
                  stages: bool = False) -> str | None:
    """One line on the session's statement (None when the session runs nothing any more)."""
    rows = db.query(_MARIADB if flavour == "mariadb" else _ANY, id=session_id)
    if not rows:
        return None
    row = {k.upper(): v for k, v in rows[0].items()}
    parts = [f"{what}: {elapsed:,.0f} s"]
    stage = _stage_part(db, session_id) if stages else None
    if stage:
        parts.append(stage)
    elif row.get("MAX_STAGE"):
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
    flavour = server_flavour(db)

    with stage_events(db, out) as stages:
        def watch() -> None:
            if not started.wait(timeout=None) or done.is_set():
                return
            while not done.wait(every):
                line = progress_line(db, session[0], what, time.monotonic() - began, flavour, stages)
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
