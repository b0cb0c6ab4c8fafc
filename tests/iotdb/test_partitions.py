"""Daily partitions of Facts: SQL for MariaDB 10.11 and MySQL 8, conversion and
maintenance on a real MariaDB, and the purge by partition with its fallbacks. Conservation
everywhere: rows in the target + rows in Facts == rows inserted, late rows included."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import date, datetime, timedelta

import pytest

from meccano.errors import PartitionError, PurgeStopped
from meccano.export import chain, purge
from meccano.export.ledger import Ledger
from meccano.iotdb import partition_ops as ops
from meccano.iotdb import partitions as pt
from meccano.settings.config import load_settings
from tests.support.export import (
    DAYS,
    WorkerDied,
    as_tuple,
    day_facts,
    db_rows,
    insert_facts,
    ledger_entries,
    run_chain,
    seed_export,
)

NOW = datetime(2024, 3, 10, 2, 0, 0)
TODAY = NOW.date()


# --- SQL, both dialects ---------------------------------------------------------------------

def test_mysql8_and_mariadb_sql():
    days = [("p20240301", 1709337600), ("p20240302", 1709424000)]
    for dialect in ("mysql8", "mariadb"):
        assert pt.partition_by_sql("Facts", "creationDate", 1709251200, days, dialect) == (
            "ALTER TABLE `Facts` ALGORITHM=COPY, LOCK=SHARED PARTITION BY RANGE (UNIX_TIMESTAMP(`creationDate`)) (\n"
            "  PARTITION `p0` VALUES LESS THAN (1709251200),\n"
            "  PARTITION `p20240301` VALUES LESS THAN (1709337600),\n"
            "  PARTITION `p20240302` VALUES LESS THAN (1709424000),\n"
            "  PARTITION `pmax` VALUES LESS THAN MAXVALUE)")
        assert pt.reorganize_catch_all_sql("Facts", days[1:], dialect) == (
            "ALTER TABLE `Facts` REORGANIZE PARTITION `pmax` INTO (\n"
            "  PARTITION `p20240302` VALUES LESS THAN (1709424000),\n"
            "  PARTITION `pmax` VALUES LESS THAN MAXVALUE)")
    assert pt.exchange_sql("Facts", "p20240301", "Facts_purge_20240301", "mysql8") == (
        "ALTER TABLE `Facts` EXCHANGE PARTITION `p20240301` WITH TABLE `Facts_purge_20240301` WITHOUT VALIDATION")
    assert pt.exchange_sql("Facts", "p20240301", "Facts_purge_20240301", "mariadb") == (
        "ALTER TABLE `Facts` EXCHANGE PARTITION `p20240301` WITH TABLE `Facts_purge_20240301`")
    maria = ("CREATE TABLE `Facts` (\n  `data` int(11) NOT NULL,\n  `creationDate` timestamp NOT NULL,\n"
             "  KEY `Facts_creationDate_idx` (`creationDate`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4\n"
             " PARTITION BY RANGE (unix_timestamp(`creationDate`))\n(PARTITION `p0` VALUES LESS THAN (1) ENGINE = "
             "InnoDB,\n PARTITION `pmax` VALUES LESS THAN MAXVALUE ENGINE = InnoDB)")
    mysql8 = maria.split("\n PARTITION BY")[0] + (
        "\n/*!50100 PARTITION BY RANGE (unix_timestamp(`creationDate`))\n"
        "(PARTITION p0 VALUES LESS THAN (1) ENGINE = InnoDB,\n"
        " PARTITION pmax VALUES LESS THAN MAXVALUE ENGINE = InnoDB) */")
    for show in (maria, mysql8):
        assert pt.holding_sql(show, "Facts", "Facts_purge_20240301") == (
            "CREATE TABLE `Facts_purge_20240301` (\n  `data` int(11) NOT NULL,\n  `creationDate` timestamp NOT NULL,\n"
            "  KEY `Facts_creationDate_idx` (`creationDate`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
    assert pt.remove_sql("Facts") == "ALTER TABLE `Facts` REMOVE PARTITIONING"
    with pytest.raises(PartitionError, match="not a plain SQL identifier"):
        pt.remove_sql("Facts; DROP TABLE x")
    with pytest.raises(PartitionError, match="not a plain SQL identifier"):
        pt.remove_sql("Facts\n")
    with pytest.raises(PartitionError, match="unknown SQL dialect 'oracle'"):
        pt.exchange_sql("Facts", "p", "h", "oracle")


def test_layout_bounds_exact_and_ahead():
    layout = pt.Layout("Facts", "RANGE", "unix_timestamp(`creationDate`)", [
        pt.RangePart("p0", 100, 0), pt.RangePart("p20240301", 200, 5), pt.RangePart("p20240302", 300, 0),
        pt.RangePart("pmax", None, 0)])
    assert layout.by_day_of("creationDate") and not layout.by_day_of("readDate")
    assert layout.exact(100, 200).name == "p20240301"
    assert layout.exact(100, 300) is None  # a day spanning two partitions is not one partition
    assert layout.containing(50).name == "p0" and layout.containing(10**9).name == "pmax"
    assert layout.ahead(200) == 1 and layout.ahead(300) == 0
    assert pt.name_day("p20240302") == date(2024, 3, 2) and pt.name_day("pmax") is None
    expected = ops.CONVERT_FIXED_S + 1_200_000 / ops.CONVERT_ROWS_PER_S
    assert ops.estimate_lock_seconds(1_200_000, 0) == pytest.approx(expected)


# --- MariaDB --------------------------------------------------------------------------------

def _per_partition(db) -> dict[str, int]:
    return {p.name: int(db.scalar(f"SELECT COUNT(*) FROM Facts PARTITION ({p.name})"))
            for p in pt.inspect(db, "Facts").parts}


@pytest.mark.services
def test_timestamp_needs_unix_timestamp_ranges(iotdb):
    """Why the bounds are epochs: MariaDB refuses the other ways of ranging a TIMESTAMP."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    for clause in ("RANGE COLUMNS (creationDate) (PARTITION p VALUES LESS THAN ('2024-03-02 00:00:00'))",
                   "RANGE (TO_DAYS(creationDate)) (PARTITION p VALUES LESS THAN (739000))"):
        with pytest.raises((OperationalError, ProgrammingError)):
            iotdb.execute(f"ALTER TABLE Facts PARTITION BY {clause}")
    assert not pt.inspect(iotdb, "Facts").partitioned


@pytest.mark.services
def test_convert_puts_each_export_day_in_its_partition(iotdb):
    rows = [r for d in DAYS for r in day_facts(d, 200)]
    insert_facts(iotdb, rows)
    plan = ops.plan_conversion(iotdb, "Facts", "creationDate", TODAY, ahead=3)
    assert (plan.first_day, plan.last_day) == (date(2024, 3, 1), date(2024, 3, 13))
    ops.convert(iotdb, plan)
    counts = _per_partition(iotdb)
    assert next(iter(counts)) == "p0" and list(counts)[-1] == "pmax" and len(counts) == 2 + 13
    assert {k: v for k, v in counts.items() if v} == {"p20240301": 200, "p20240302": 200, "p20240303": 200}
    assert db_rows(iotdb) == Counter(as_tuple(r) for r in rows)
    st = ops.status(iotdb, "Facts", "creationDate", TODAY)
    assert (st.by_day, st.ahead, st.last_day, st.problems) == (True, 3, date(2024, 3, 13), [])
    with pytest.raises(PartitionError, match="already partitioned"):
        ops.plan_conversion(iotdb, "Facts", "creationDate", TODAY)


@pytest.mark.services
def test_keep_ahead_adds_days_and_splits_the_catch_all(iotdb, caplog):
    insert_facts(iotdb, day_facts("2024-03-09", 10))
    ops.convert(iotdb, ops.plan_conversion(iotdb, "Facts", "creationDate", TODAY, ahead=1))
    assert ops.status(iotdb, "Facts", "creationDate", TODAY + timedelta(days=1)).problems  # ran out
    stray = day_facts("2024-03-14", 7, seed=3)  # beyond the last partition: lands in the catch-all
    insert_facts(iotdb, stray)
    assert _per_partition(iotdb)["pmax"] == 7
    st = ops.status(iotdb, "Facts", "creationDate", TODAY)
    assert st.catch_all_rows == 7 and any("catch-all" in p for p in st.problems)
    caplog.set_level(logging.INFO)
    done = ops.keep_ahead(iotdb, "Facts", "creationDate", TODAY, ahead=2)
    # up to the newest stray row (03-14), beyond the 2 days asked
    assert done.added == ["p20240312", "p20240313", "p20240314"] and done.moved_rows == 7
    counts = _per_partition(iotdb)
    assert counts["pmax"] == 0 and counts["p20240314"] == 7 and counts["p20240309"] == 10
    assert ops.keep_ahead(iotdb, "Facts", "creationDate", TODAY, ahead=2).added == []  # idempotent
    assert sum(counts.values()) == 17


@pytest.mark.services
def test_keep_ahead_leaves_an_unpartitioned_table_alone(iotdb):
    done = ops.keep_ahead(iotdb, "Facts", "creationDate", TODAY)
    assert "not partitioned" in done.skipped and not pt.inspect(iotdb, "Facts").partitioned


@pytest.mark.services
def test_cli_plans_without_yes_dry_run_prints_sql_yes_converts(iotdb, airflow_pool, capsys, monkeypatch):
    from meccano.cli.main import main

    insert_facts(iotdb, day_facts("2024-03-01", 50))
    assert main(["db", "check"]) == 0
    assert "Facts: not partitioned" in capsys.readouterr().out
    assert main(["db", "partition"]) == 1  # no --yes and no terminal to ask on: the plan, then refused
    captured = capsys.readouterr()
    out = captured.out
    assert "INSERTs wait for about" in out and "pt-online-schema-change" in out
    assert "db partition: not done: it needs confirmation" in captured.err
    assert "REMOVE PARTITIONING" in out
    assert main(["db", "partition", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "PARTITION BY RANGE (UNIX_TIMESTAMP(`creationDate`))" in out and "VALUES LESS THAN MAXVALUE" in out
    assert not pt.inspect(iotdb, "Facts").partitioned  # neither changed anything
    assert main(["db", "partition", "--yes", "--ahead", "5"]) == 0
    assert "5 future day(s) ahead" in capsys.readouterr().out
    assert main(["db", "check"]) == 0
    assert "Facts: partitioned by day" in capsys.readouterr().out
    assert main(["db", "partition", "--yes"]) == 1
    assert "already partitioned" in capsys.readouterr().out


# --- the purge ------------------------------------------------------------------------------

@pytest.fixture
def world(iotdb, s3_server, tmp_path, monkeypatch):
    seeded = seed_export(iotdb, s3_server, tmp_path, monkeypatch)
    ops.convert(iotdb, ops.plan_conversion(iotdb, "Facts", "creationDate", TODAY, ahead=3))

    class World:
        db = iotdb
        reader = seeded.reader
        inserted = seeded.old_rows + seeded.recent_rows

        def add(self, rows: list[dict]) -> None:
            insert_facts(iotdb, rows)
            self.inserted.update(as_tuple(r) for r in rows)

        def until_verify(self, run_id: str) -> dict:
            return seeded.until_verify(run_id, NOW)

        def conserved(self) -> None:
            """Nothing lost, nothing twice: target + Facts == inserted."""
            assert self.reader.rows() + db_rows(iotdb) == self.inserted

        def nothing_lost(self) -> None:
            """Mid-way (a purge stopped): every inserted row is still in the target or in Facts."""
            assert not self.inserted - (self.reader.rows() + db_rows(iotdb))

        def rerun_completes(self, run_id: str) -> None:
            run_chain(load_settings(), iotdb, run_id=run_id, when=NOW)
            self.conserved()
            assert all(k[-1] >= "2024-03-09" for k in db_rows(iotdb))  # every old day gone from Facts
            assert {e.state for e in ledger_entries(iotdb)} == {"purged"}
            assert not [t for t in iotdb.query("SHOW TABLES") if "_purge_" in next(iter(t.values()))]

    return World()


@pytest.mark.services
def test_verified_days_are_purged_by_taking_their_partitions(world, caplog):
    caplog.set_level(logging.INFO)
    result = run_chain(load_settings(), world.db, run_id="run1", when=NOW)
    assert result["purged"] == 3 * 1200
    assert caplog.text.count("by taking partition") == 3
    assert "purge Facts" not in caplog.text  # no chunked purge ran
    counts = _per_partition(world.db)
    assert counts["p20240301"] == counts["p20240302"] == counts["p20240303"] == 0 and counts["p20240309"] == 20
    world.conserved()
    assert all(c.purged for c in Ledger(world.db).get("Facts", DAYS[1]).manifest.chunks)


@pytest.mark.services
def test_a_day_not_alone_in_its_partition_is_purged_by_chunks(world, caplog):
    world.db.execute("ALTER TABLE Facts REORGANIZE PARTITION p20240301, p20240302 INTO "
                     "(PARTITION p20240302 VALUES LESS THAN (UNIX_TIMESTAMP('2024-03-03 00:00:00')))")
    caplog.set_level(logging.INFO)
    world.rerun_completes("run1")
    assert "Facts 2024-03-01: no partition holds exactly this day: purged by chunks" in caplog.text
    assert caplog.text.count("by taking partition") == 1  # 03-03 only


@pytest.mark.services
def test_late_row_between_verify_and_purge_falls_back_to_chunks(world, caplog):
    planned = world.until_verify("run1")
    late = day_facts(DAYS[1], 1, seed=42, offset=80_000)
    world.add(late)  # lands in 03-02 after it was verified
    caplog.set_level(logging.INFO)
    with pytest.raises(PurgeStopped, match="late rows arrived after verification"):
        chain.purge_step(load_settings(), world.db, planned)
    assert "partition p20240302 held 1201 row(s) (0 outside the day), not the 1200 verified" in caplog.text
    assert db_rows(world.db)[as_tuple(late[0])] == 1
    world.nothing_lost()
    world.rerun_completes("rerun")


@pytest.mark.services
def test_late_row_in_the_instant_before_the_exchange_goes_back(world, monkeypatch, caplog):
    """The race: counted, then a row arrives, then the partition is taken. The holding table
    holds one row too many: every row goes back and the chunked purge takes over."""
    planned = world.until_verify("run1")
    late = day_facts(DAYS[0], 1, seed=7, offset=90_000)
    real = purge._exchange

    def racing(db, table, partition, holding, dialect):
        if partition == "p20240301":
            world.add(late)
        real(db, table, partition, holding, dialect)

    monkeypatch.setattr(purge, "_exchange", racing)
    caplog.set_level(logging.INFO)
    with pytest.raises(PurgeStopped):
        chain.purge_step(load_settings(), world.db, planned)
    assert "held 1201 row(s) (0 outside the day), not the 1200 verified: the rows went back" in caplog.text
    assert db_rows(world.db)[as_tuple(late[0])] == 1
    world.nothing_lost()
    monkeypatch.setattr(purge, "_exchange", real)
    world.rerun_completes("rerun")


@pytest.mark.services
def test_late_row_just_after_the_exchange_stays_and_is_exported_next(world, monkeypatch):
    planned = world.until_verify("run1")
    late = day_facts(DAYS[2], 1, seed=8, offset=95_000)
    real = purge._exchange

    def then_insert(db, table, partition, holding, dialect):
        real(db, table, partition, holding, dialect)
        if partition == "p20240303":
            world.add(late)

    monkeypatch.setattr(purge, "_exchange", then_insert)
    assert chain.purge_step(load_settings(), world.db, planned)["purged"] == 3 * 1200
    assert _per_partition(world.db)["p20240303"] == 1  # the late row, in the emptied partition
    world.conserved()
    monkeypatch.setattr(purge, "_exchange", real)
    world.rerun_completes("run2")  # reconcile mode appends it to the day in the target


@pytest.mark.services
@pytest.mark.parametrize("when", ["after_exchange", "before_exchange"])
def test_worker_killed_during_the_drop_then_rerun(world, monkeypatch, when):
    planned = world.until_verify("crashed")
    real = purge._exchange

    def dies(db, table, partition, holding, dialect):
        if when == "after_exchange":
            real(db, table, partition, holding, dialect)
        raise WorkerDied

    monkeypatch.setattr(purge, "_exchange", dies)
    with pytest.raises(WorkerDied):
        chain.purge_step(load_settings(), world.db, planned)
    held = Counter(as_tuple(r) for r in world.db.query("SELECT * FROM Facts_purge_20240301"))
    assert sum(held.values()) == (1200 if when == "after_exchange" else 0)
    assert Ledger(world.db).get("Facts", DAYS[0]).manifest.drop is not None
    assert not world.inserted - (world.reader.rows() + db_rows(world.db) + held)  # the held rows are not lost
    monkeypatch.setattr(purge, "_exchange", real)
    world.rerun_completes("rerun")  # the plan step settles the interrupted drop first


@pytest.mark.services
def test_exchange_that_cannot_get_its_lock_falls_back(world, monkeypatch, caplog):
    planned = world.until_verify("run1")

    def refused(db, table, partition, holding, dialect):
        raise RuntimeError("Lock wait timeout exceeded")

    monkeypatch.setattr(purge, "_exchange", refused)
    caplog.set_level(logging.INFO)
    assert chain.purge_step(load_settings(), world.db, planned)["purged"] == 3 * 1200
    assert caplog.text.count("failed (Lock wait timeout exceeded): purged by chunks") == 3
    world.conserved()
    assert not [t for t in world.db.query("SHOW TABLES") if "_purge_" in next(iter(t.values()))]


# --- the maintenance plugin -------------------------------------------------------------------

def test_facts_partitions_plugin_is_valid():
    from meccano.contract.manifest import load_plugin
    from tests.support.fleet import ROOT_PLUGINS

    load = load_plugin(ROOT_PLUGINS / "factsPartitions:1.0")
    assert load.valid and not load.warnings, (load.problems, load.warnings)
    assert load.manifest.parameters == {"ahead": 14} and "<h1>" in load.manifest.docs.read_text()


@pytest.mark.services
def test_facts_partitions_dag_keeps_partitions_ahead(iotdb, airflow_db):
    from meccano.plugins.factory import build_dags

    def run() -> None:
        dag_run = build_dags(only_dag_id="factsPartitions")["factsPartitions"].test()
        assert dag_run.state == "success"

    run()  # not partitioned: nothing to do, not a failure
    assert not pt.inspect(iotdb, "Facts").partitioned
    today = ops.today_of_export(load_settings())
    ops.convert(iotdb, ops.plan_conversion(iotdb, "Facts", "creationDate", today, ahead=1))
    assert ops.status(iotdb, "Facts", "creationDate", today).ahead == 1
    run()
    st = ops.status(iotdb, "Facts", "creationDate", today)
    assert (st.ahead, st.last_day, st.problems) == (14, today + timedelta(days=14), [])


@pytest.mark.services
def test_a_long_conversion_reports_its_progress(iotdb):
    """``db partition --yes`` is one ALTER that copies every row: while it runs, a line on how far it is
    (MariaDB's stage and percentage, read from another session) goes out at the chosen interval."""
    insert_facts(iotdb, day_facts("2024-03-01", 2000))
    for _ in range(7):  # 2,000 -> 256,000 rows: an ALTER that lasts long enough to be watched
        iotdb.execute("INSERT INTO Facts SELECT * FROM Facts")
    lines: list[str] = []
    ops.convert(iotdb, ops.plan_conversion(iotdb, "Facts", "creationDate", TODAY, ahead=1), out=lines.append,
                every=0.05)
    assert lines, "no progress line while the ALTER ran"
    assert all(line.startswith("converting Facts: ") for line in lines), lines
    assert any(" of " in line and "%" in line for line in lines), lines  # MariaDB's STAGE/MAX_STAGE/PROGRESS
    assert sum(_per_partition(iotdb).values()) == 256_000
