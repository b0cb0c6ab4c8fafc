"""Migrations of the ServiceManager's own tables (alembic), run on the Iotdb's engine.

The revisions live in ``migrations/versions/`` next to this module (installed as package data) and
are applied one at a time through alembic's ``MigrationContext``/``Operations``, each stamped in
its own version table, ``meccano_alembic_version``: Airflow's metadata database keeps
``alembic_version`` for itself and may share the server.

The gateway's tables (:data:`GATEWAY_TABLES`) belong to the gateway: a revision never creates,
alters, writes or drops them. :func:`gateway_guard` enforces it on every statement a revision runs;
a revision may only name, in ``gateway_indexes``, indexes the ServiceManager itself once added to a
gateway table and now removes. The gateway's tables themselves are created when missing by
``meccano.iotdb.schema.ensure_schema`` (the demo, the tests), which then runs :func:`upgrade`.

Every revision is idempotent (it creates only what is missing and drops only what is there), so an
upgrade interrupted between a revision's DDL and its stamp is re-run safely: MySQL commits DDL at
once, whatever the transaction.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meccano.errors import MigrationError
from meccano.iotdb.db import Iotdb

if TYPE_CHECKING:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import Script, ScriptDirectory
    from sqlalchemy.engine import Connection

    from meccano.problems import Problem
    from meccano.settings.config import Settings

VERSION_TABLE = "meccano_alembic_version"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
UPGRADE_COMMAND = "python -m meccano db upgrade"
LOCK_WAIT_SECONDS = 600.0  # how long a second upgrade waits for the first before giving up
GATEWAY_TABLES = ("Registration", "Announcement", "Facts", "Messages", "DeviceStatistics",
                  "DeviceHistoryStatus", "User")
_WRITES = re.compile(r"^\s*(CREATE|ALTER|DROP|RENAME|TRUNCATE|INSERT|UPDATE|DELETE|REPLACE)\b", re.I)

Say = Callable[[str], None]


def quiet(line: str) -> None:
    """The default ``say``: callers that print nothing (fixtures, the demo's own log)."""


@cache
def scripts() -> ScriptDirectory:
    """The revisions shipped with this version (read once per process)."""
    from alembic.script import ScriptDirectory  # lazy: alembic.script costs 312 ms at import (python -X importtime)

    return ScriptDirectory(str(MIGRATIONS_DIR))


def _context(con: Connection) -> MigrationContext:
    """alembic's context on ``con`` with our version table; its INFO lines ("Context impl ...") are left out:
    the command line says each step itself."""
    # lazy: alembic.runtime.migration costs 237 ms at import (python -X importtime)
    from alembic.runtime.migration import MigrationContext

    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    return MigrationContext.configure(con, opts={"version_table": VERSION_TABLE})


def current_revision(db: Iotdb) -> str | None:
    """The revision the IOTDB is at; None when no revision was ever applied (or stamped)."""
    with db.engine.connect() as con:
        return _context(con).get_current_revision()


def pending(db: Iotdb) -> list[Script]:
    """The revisions still to apply, oldest first. Raises :class:`MigrationError` when the IOTDB is at a
    revision this version does not know (a newer ServiceManager upgraded it)."""
    directory = scripts()
    current = current_revision(db)
    known = {s.revision for s in directory.walk_revisions()}
    if current is not None and current not in known:
        raise MigrationError(
            f"the IOTDB's {VERSION_TABLE} says revision {current!r}, which this version of the ServiceManager "
            f"does not know (it knows {', '.join(sorted(known))}): a newer version upgraded it. Run that "
            "version, or its `python -m meccano db downgrade` down to a revision this one knows")
    return list(reversed(list(directory.iterate_revisions(directory.get_current_head(), current))))


@contextmanager
def gateway_guard(con: Connection, allowed: tuple[str, ...] = ()) -> Iterator[None]:
    """Refuse, before it reaches the server, any statement on ``con`` that would create, alter, write or
    drop one of the gateway's tables, unless it names one of the ``allowed`` (index) names."""
    from sqlalchemy import event  # lazy: sqlalchemy costs 130 ms at import (python -X importtime)

    tables = re.compile(r"\b(" + "|".join(GATEWAY_TABLES) + r")\b", re.I)
    allowed_names = re.compile(r"\b(" + "|".join(map(re.escape, allowed)) + r")\b", re.I) if allowed else None

    def check(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        hit = tables.search(statement) if _WRITES.match(statement) else None
        if hit and not (allowed_names and allowed_names.search(statement)):
            raise MigrationError(
                f"refused: a migration may not change the gateway's table {hit.group(1)} "
                f"({' '.join(statement.split())[:120]!r}); nothing of that statement ran. Only the gateway "
                "changes its own tables")

    event.listen(con, "before_cursor_execute", check)
    try:
        yield
    finally:
        event.remove(con, "before_cursor_execute", check)


def _run(db: Iotdb, script: Script, direction: str, stamp: str, say: Say) -> None:
    """Run one revision's ``upgrade``/``downgrade`` under the guard, then stamp ``stamp`` ("base": none)."""
    from alembic.operations import Operations  # lazy: alembic.operations costs 329 ms at import (python -X importtime)
    from sqlalchemy.exc import DBAPIError  # lazy: sqlalchemy.exc costs 130 ms at import (python -X importtime)

    try:
        with db.begin() as con:
            context = _context(con)
            allowed = tuple(getattr(script.module, "gateway_indexes", ()))
            with Operations.context(context), gateway_guard(con, allowed):
                for line in getattr(script.module, direction)() or ():
                    say(f"  {line}")
            context.stamp(scripts(), stamp)
    except DBAPIError as exc:
        cause = getattr(exc, "orig", None) or exc
        raise MigrationError(
            f"{script.revision} ({direction}) failed: {type(cause).__name__}: {str(cause)[:300]}. The IOTDB stays at "
            f"its previous revision; the revision only does what is still missing, so fix the cause and re-run "
            f"the command") from exc


@contextmanager
def migration_lock(db: Iotdb, say: Say = quiet, wait_seconds: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """One migration at a time on an IOTDB.

    Two ``db upgrade`` runs at once (two deploys, an init container restarted while the first still runs)
    would both find a revision pending and apply it twice, and MySQL commits DDL at once. MySQL/MariaDB:
    the server's named lock (``GET_LOCK``), held by one connection and released by the server when that
    connection ends, so a crashed run never leaves it behind. SQLite: ``flock`` on a file next to the
    database, released by the kernel when the process ends. A second run waits up to ``wait_seconds``,
    saying so, then fails with :class:`MigrationError`; nothing of it ran.
    """
    if db.dialect == "mysql":
        with _mysql_lock(db, say, wait_seconds):
            yield
    elif db.sqlite_path and db.sqlite_path != ":memory:":
        with _file_lock(f"{db.sqlite_path}.migrate-lock", say, wait_seconds):
            yield
    else:
        yield


def _busy(wait_seconds: float) -> MigrationError:
    return MigrationError(
        f"another `{UPGRADE_COMMAND}` (or downgrade) held the IOTDB's migration lock for {wait_seconds:g} s; "
        "nothing was applied. Let it finish (or stop it), then re-run the command")


@contextmanager
def _mysql_lock(db: Iotdb, say: Say, wait_seconds: float) -> Iterator[None]:
    from sqlalchemy import text  # lazy: sqlalchemy costs 130 ms at import (python -X importtime)

    with db.engine.connect() as con:
        name = f"meccano_migrate:{con.exec_driver_sql('SELECT DATABASE()').scalar() or ''}"[:64]
        lock = text("SELECT GET_LOCK(:name, :wait)")
        if con.execute(lock, {"name": name, "wait": 0}).scalar() != 1:
            say(f"another migration holds the lock {name!r}; waiting up to {wait_seconds:g} s")
            if con.execute(lock, {"name": name, "wait": wait_seconds}).scalar() != 1:
                raise _busy(wait_seconds)
        try:
            yield
        finally:
            con.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})


@contextmanager
def _file_lock(path: str, say: Say, wait_seconds: float) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        deadline, waiting = time.monotonic() + wait_seconds, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _busy(wait_seconds) from None
                if not waiting:
                    say(f"another migration holds the lock {path}; waiting up to {wait_seconds:g} s")
                    waiting = True
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # releases the lock


def upgrade(db: Iotdb, say: Say = quiet, lock_wait: float = LOCK_WAIT_SECONDS) -> list[str]:
    """Apply every pending revision, saying one line per revision before it runs; the revisions applied.
    Runs under :func:`migration_lock`: a second run waits, then finds nothing pending."""
    with migration_lock(db, say, lock_wait):
        todo = pending(db)
        for index, script in enumerate(todo, 1):
            say(f"applying {script.revision} ({index} of {len(todo)}): {script.doc}")
            _run(db, script, "upgrade", script.revision, say)
    head = scripts().get_current_head()
    say(f"ServiceManager tables at revision {head} (head)" + ("" if todo else ", nothing to apply"))
    return [s.revision for s in todo]


def downgrade(db: Iotdb, say: Say = quiet) -> str:
    """Revert the current revision (one step); the revision the IOTDB is at afterwards."""
    with migration_lock(db, say):
        return _downgrade(db, say)


def _revision_to_revert(db: Iotdb) -> tuple[str, Any, str]:
    """(the current revision, its script, the revision a downgrade reaches: "base" below the first one). Raises
    :class:`MigrationError` when there is nothing to downgrade, or a revision this version does not know."""
    current = current_revision(db)
    if current is None:
        raise MigrationError(f"nothing to downgrade: the IOTDB has no ServiceManager revision ({VERSION_TABLE} is "
                             f"missing or empty). `{UPGRADE_COMMAND}` brings it to the head revision")
    pending(db)  # names a revision this version does not know
    script = scripts().get_revision(current)
    target = script.down_revision if isinstance(script.down_revision, str) else "base"
    return current, script, target


def _downgrade(db: Iotdb, say: Say) -> str:
    current, script, target = _revision_to_revert(db)
    say(f"reverting {current} -> {target}: {script.doc}")
    _run(db, script, "downgrade", target, say)
    say(f"ServiceManager tables at revision {target}; `{UPGRADE_COMMAND}` re-applies {current}")
    return target


# --- plans: what an upgrade or downgrade would run, nothing run ------------------------------------

@dataclass(frozen=True)
class PlannedStep:
    """One revision an upgrade or downgrade would run: ``statements`` None when they cannot be known before
    the steps planned ahead of it have run (the revision looks at tables those steps create)."""

    revision: str
    doc: str
    direction: str
    target: str
    statements: tuple[str, ...] | None

    def lines(self, index: int, total: int) -> list[str]:
        verb = "apply" if self.direction == "upgrade" else "revert"
        head = f"would {verb} {self.revision} -> {self.target} ({index} of {total}): {self.doc}"
        if self.statements is None:
            body = ["  (its statements depend on what the steps above create: it creates only what is missing "
                    "then, and says each step as it runs)"]
        elif not self.statements:
            body = ["  (no statement: nothing to change on this IOTDB)"]
        else:
            body = [f"  {line}" for statement in self.statements for line in f"{statement};".splitlines()]
        return [head, *body]


@contextmanager
def _reads_only(con: Connection) -> Iterator[None]:
    """While a plan is made: any statement that would change something and reaches the server is refused
    (alembic's operations are written out, not run; this catches a revision writing through its bind)."""
    from sqlalchemy import event  # lazy: sqlalchemy costs 130 ms at import (python -X importtime)

    def check(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if _WRITES.match(statement):
            raise MigrationError(f"planning refused a statement that would change the IOTDB "
                                 f"({' '.join(statement.split())[:120]!r}); nothing ran")

    event.listen(con, "before_cursor_execute", check)
    try:
        yield
    finally:
        event.remove(con, "before_cursor_execute", check)


def planned_statements(db: Iotdb, script: Script, direction: str) -> tuple[str, ...]:
    """The SQL ``direction`` of ``script`` would run on the IOTDB as it is now. alembic's offline mode
    (``--sql``) writes each operation out instead of running it; here the revision still reads the live
    database (it looks before it acts), and anything that would write is refused (:func:`_reads_only`)."""
    from alembic.operations import Operations  # lazy: alembic.operations costs 329 ms at import (python -X importtime)

    buffer = io.StringIO()
    with db.engine.connect() as con:
        context = _context(con)
        context.impl.as_sql, context.impl.output_buffer = True, buffer
        try:
            with Operations.context(context), _reads_only(con):
                getattr(script.module, direction)()
        finally:
            con.rollback()
    return tuple(s.strip() for s in buffer.getvalue().split(";\n\n") if s.strip())


def plan_upgrade(db: Iotdb, after_planned_steps: bool = False) -> list[PlannedStep]:
    """Every pending revision with its statements; ``after_planned_steps``: steps planned before these (the
    schema's) have not run, so a revision that cannot look at what it needs is planned without statements."""
    steps: list[PlannedStep] = []
    for script in pending(db):
        first = not steps and not after_planned_steps
        try:
            statements: tuple[str, ...] | None = planned_statements(db, script, "upgrade")
        except MigrationError:
            raise
        except Exception:  # noqa: BLE001 - a table an earlier planned step creates is not there yet
            if first:
                raise
            statements = None
        steps.append(PlannedStep(script.revision, script.doc, "upgrade", script.revision, statements))
    return steps


def plan_downgrade(db: Iotdb) -> PlannedStep:
    """The one revision ``db downgrade`` would revert, with its statements. Raises :class:`MigrationError`
    when there is nothing to downgrade."""
    current, script, target = _revision_to_revert(db)
    return PlannedStep(current, script.doc, "downgrade", target, planned_statements(db, script, "downgrade"))


def check_lines(db: Iotdb) -> tuple[list[str], bool]:
    """``db check``'s lines about the migrations, and whether any revision is pending."""
    todo = pending(db)
    if not todo:
        return [f"ServiceManager tables at revision {current_revision(db)} (head)"], False
    lines = [f"PENDING migration {s.revision}: {s.doc}" for s in todo]
    return [*lines, f"{len(todo)} migration(s) pending; run: {UPGRADE_COMMAND}"], True


def migration_command(db: Iotdb, action: str, out: Say = print) -> int:
    """``db check`` (pending revisions; exit 1 when any) and ``db downgrade`` (one step) for the command line.
    A refused downgrade raises :class:`MigrationError`; the command line prints it."""
    if action == "downgrade":
        downgrade(db, out)
        return 0
    try:
        lines, problem = check_lines(db)
    except MigrationError as exc:
        lines, problem = [f"migrations: {exc}"], True
    out("\n".join(lines))
    return 1 if problem else 0


def iotdb_missing(settings: Settings) -> list[Problem]:
    """The IOTDB as a prerequisite of plugin tasks: reachable, and no migration pending (for ``config show``
    and the Meccano page; ``db check`` prints the same in full)."""
    # lazy: meccano.settings.prerequisites costs 3 ms at import (python -X importtime)
    from meccano.settings.prerequisites import missing

    try:
        db = Iotdb.from_settings(settings)
        try:
            todo = [s.revision for s in pending(db)]
        finally:
            db.dispose()
    except Exception as exc:  # noqa: BLE001 - named, not raised: the check reports what it meets
        return [missing("IOTDB connection", f"the IOTDB could not be used ({type(exc).__name__})",
                        f"define the Airflow connection {settings.iotdb.conn_id!r} (or mysql.host/port/user/password)")]
    if todo:
        return [missing("IOTDB schema migrations", f"{len(todo)} pending ({', '.join(todo)})", UPGRADE_COMMAND)]
    return []
