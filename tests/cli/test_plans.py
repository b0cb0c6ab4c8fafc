"""Every action that changes something plans first (issue 35): ``--dry-run`` prints what would be done and changes
nothing; a destructive action without ``--yes`` and without a terminal is refused after its plan, changing nothing;
on a terminal it asks "Proceed? (y/n)". On SQLite and MariaDB (the ``new_db`` fixture of test_migrations)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine

from meccano.cli.main import main
from meccano.iotdb import schema_migrations
from meccano.iotdb.db import Iotdb
from meccano.iotdb.schema import ensure_schema
from tests.iotdb.test_migrations import HEAD, definitions, new_db, rows, seed  # noqa: F401 - new_db: the fixture below uses it

ROOT = Path(__file__).resolve().parents[2]
BEFORE_HEAD = "0002_drop_facts_stats_idx"


@pytest.fixture
def make_db(new_db):  # noqa: F811 - the fixture imported above, by its name
    """``make_db()``: an empty IOTDB, MariaDB or SQLite, made the configured one (test_migrations' ``new_db``)."""
    return new_db


def state(db: Iotdb) -> dict[str, Any]:
    """Everything a command could change in the IOTDB: tables with their definitions and rows, views, the
    ServiceManager's revision."""
    insp = inspect(db.engine)
    names = sorted(insp.get_table_names())
    return {"tables": names, "views": sorted(insp.get_view_names()), "definitions": definitions(db, names),
            "rows": rows(db, names), "revision": schema_migrations.current_revision(db)}


def test_upgrade_dry_run_on_an_empty_iotdb_creates_nothing(make_db, airflow_pool, capsys):
    db = make_db()
    before = state(db)
    assert before["tables"] == []
    assert main(["db", "upgrade", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would create table Facts:" in out and "    CREATE TABLE Facts (" in out
    assert "would apply 0001_baseline -> 0001_baseline (1 of 3): the ServiceManager's tables" in out
    assert "CREATE TABLE Forecast_Day (" in out  # the baseline's own statements
    assert f"would apply {HEAD} -> {HEAD} (3 of 3)" in out
    assert "pool 'iotdb': stays at 10 slots" in out and out.rstrip().endswith("dry run: nothing was changed")
    assert state(db) == before
    assert main(["db", "init", "--show-sql-only"]) == 0  # Airflow's name for it
    assert "would create table Facts:" in capsys.readouterr().out
    assert state(db) == before


def test_a_dry_run_does_not_create_a_missing_sqlite_file(tmp_path, airflow_pool, monkeypatch, capsys):
    missing = tmp_path / "not-yet.sqlite"
    monkeypatch.delenv("AIRFLOW_CONN_MECCANO_IOTDB", raising=False)
    monkeypatch.setenv("MECCANO_IOTDB_SQLITE", str(missing))
    assert main(["db", "upgrade", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"the SQLite IOTDB {missing} does not exist yet" in out and "would create table Facts:" in out
    assert list(tmp_path.iterdir()) == []  # no file, no -wal, no lock file


def test_upgrade_dry_run_prints_the_statements_the_upgrade_then_runs(make_db, airflow_pool, capsys):
    db = make_db()
    ensure_schema(db)
    schema_migrations.downgrade(db)
    seed(db)
    before = state(db)
    assert main(["db", "upgrade", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would apply {HEAD} -> {HEAD} (1 of 1): Notification: dagId and runId columns" in out
    assert "would create" not in out
    planned = [line.strip() for line in out.splitlines() if "ADD COLUMN" in line]
    assert len(planned) == 2 and all("Notification" in line for line in planned), out
    assert state(db) == before

    ran: list[str] = []

    def record(*args: Any) -> None:
        ran.append(" ".join(args[2].split()))

    event.listen(Engine, "before_cursor_execute", record)  # every engine: the command makes its own
    try:
        assert main(["db", "upgrade"]) == 0
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    capsys.readouterr()
    added = [s for s in ran if "ADD COLUMN" in s]
    assert [f"{s};" for s in added] == [" ".join(line.split()) for line in planned]  # the plan is what ran
    assert schema_migrations.current_revision(db) == HEAD


def test_downgrade_plans_then_needs_yes_without_a_terminal(make_db, airflow_pool, capsys):
    db = make_db()
    ensure_schema(db)
    seed(db)
    before = state(db)
    assert main(["db", "downgrade", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would revert {HEAD} -> {BEFORE_HEAD} (1 of 1)" in out and "dry run: nothing was changed" in out
    assert ("ALTER TABLE `Notification` DROP COLUMN `dagId`;" in out if db.dialect == "mysql"
            else 'CREATE TABLE "_alembic_tmp_Notification"' in out), out
    assert state(db) == before

    assert main(["db", "downgrade"]) == 1  # pytest's stdin is no terminal
    captured = capsys.readouterr()
    assert f"would revert {HEAD} -> {BEFORE_HEAD}" in captured.out
    assert "db downgrade: not done: it needs confirmation and there is no terminal" in captured.err
    assert "--yes" in captured.err
    assert state(db) == before

    assert main(["db", "downgrade", "-y"]) == 0
    assert f"reverting {HEAD} -> {BEFORE_HEAD}" in capsys.readouterr().out
    assert schema_migrations.current_revision(db) == BEFORE_HEAD


def _on_a_terminal(answer: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``meccano ARGS`` with a terminal as its stdin, typing ``answer``."""
    import pty

    main_fd, term = pty.openpty()
    os.write(main_fd, answer.encode() + b"\n")
    try:
        return subprocess.run([sys.executable, "-m", "meccano", *args], stdin=term, capture_output=True, text=True,
                              cwd=ROOT / "include", timeout=120)
    finally:
        os.close(term)
        os.close(main_fd)


def test_downgrade_asks_on_a_terminal(make_db, airflow_pool):
    db = make_db()
    ensure_schema(db)
    before = state(db)
    said = _on_a_terminal("n", "db", "downgrade")
    assert said.returncode == 1, said.stderr
    assert "Proceed? (y/n)" in said.stderr and "not done (answered 'n'); nothing was changed" in said.stderr
    assert state(db) == before
    said = _on_a_terminal("y", "db", "downgrade")
    assert said.returncode == 0, said.stderr
    assert schema_migrations.current_revision(db) == BEFORE_HEAD


def test_partition_dry_run_and_refusal_change_nothing(make_db, airflow_pool, capsys):
    db = make_db()
    ensure_schema(db)
    seed(db)
    before = state(db)
    if db.dialect == "sqlite":  # no partitions: the plan says so, exit 1, nothing done
        assert main(["db", "partition", "--dry-run"]) == 1
        assert "db partition:" in capsys.readouterr().out
        assert main(["db", "partition", "--yes"]) == 1
        assert state(db) == before
        return
    assert main(["db", "partition", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "PARTITION BY RANGE (UNIX_TIMESTAMP(`creationDate`))" in out and "nothing was changed" in out
    assert state(db) == before
    assert main(["db", "partition"]) == 1
    captured = capsys.readouterr()
    assert "INSERTs wait for about" in captured.out and "db partition: not done" in captured.err
    assert state(db) == before


def test_pool_sync_dry_run_changes_nothing(airflow_pool, monkeypatch, capsys):
    from meccano.settings.prerequisites import cli_pool_slots

    monkeypatch.setenv("MYSQL_CONNECTIONLIMIT", "7")
    assert main(["pool", "sync", "--dry-run"]) == 0
    assert ("pool 'iotdb': would be set to 7 slots (mysql.connectionLimit; it has 10); dry run: nothing was "
            "changed") in capsys.readouterr().out
    assert cli_pool_slots("iotdb") == 10


def test_every_state_changing_action_has_dry_run_and_destructive_ones_yes():
    """The parser itself: no action that changes something without --dry-run; the destructive ones take --yes."""
    from meccano.cli.main import build_parser

    def flags(*path: str) -> set[str]:
        parser = build_parser()
        for name in path:
            sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
            parser = sub.choices[name]  # type: ignore[attr-defined]
        return {o for a in parser._actions for o in a.option_strings}

    for path in [("db", "init"), ("db", "upgrade"), ("db", "downgrade"), ("db", "partition"), ("pool", "sync"),
                 ("migrate", "apply")]:
        assert "--dry-run" in flags(*path), path
    for path in [("db", "downgrade"), ("db", "partition"), ("migrate", "apply")]:
        assert {"-y", "--yes"} <= flags(*path), path
    assert flags("db", "check") == {"-h", "--help"}  # only its own flags
    assert "--ahead" not in flags("db", "upgrade")


@pytest.mark.parametrize("args", [["db", "check", "--dry-run"], ["db", "upgrade", "--yes"], ["config", "show", "-y"]])
def test_a_flag_an_action_does_not_take_is_a_usage_error(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err
