"""The export chain against the real services: MariaDB -> SeaweedFS S3, SQLite -> file://,
and the ``s3_export`` DAG end to end with ``dag.test()``."""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from meccano.errors import ConfigError, ExportError
from meccano.export import chain
from meccano.export.location import target_url
from meccano.export.options import load_options, table_specs
from meccano.settings.config import load_settings
from tests.support.export import (
    DAYS,
    NOW,
    ROWS_PER_DAY,
    TargetReader,
    build_chunks,
    busy_seconds,
    configure_export,
    db_rows,
    ledger_entries,
    new_bucket,
    run_chain,
    seed,
)
from tests.support.schedules import plain_schedule

# --- units --------------------------------------------------------------------------------

def test_build_chunks_are_contiguous_and_bounded():
    from meccano.export.stream import DaySeconds

    day = DaySeconds("2024-03-01")
    day.add(Counter({5: 2, 9: 2, 3600: 5, 7200: 1}))  # 00:00:05, 00:00:09, 01:00:00, 02:00:00
    chunks = day.chunks("2024-03-01 00:00:00", "2024-03-02 00:00:00", 4)
    assert [(c.start, c.end, c.rows) for c in chunks] == [
        ("2024-03-01 00:00:00", "2024-03-01 01:00:00", 4),
        ("2024-03-01 01:00:00", "2024-03-01 02:00:00", 5),  # one second is never split
        ("2024-03-01 02:00:00", "2024-03-02 00:00:00", 1)]


def test_verify_counts_each_second_in_its_chunk():
    import random

    from meccano.export.stream import counts_per_chunk

    rnd = random.Random(9)
    hist = sorted({f"2024-03-01 {rnd.randrange(24):02d}:{rnd.randrange(60):02d}:{rnd.randrange(60):02d}"
                   + rnd.choice(["", ".250"]): rnd.randint(1, 30) for _ in range(2000)}.items())
    chunks = build_chunks([(ts[:19], n) for ts, n in hist], "2024-03-01 00:00:00", "2024-03-02 00:00:00", 400)
    naive = [sum(n for ts, n in hist if ch.start <= ts < ch.end) for ch in chunks]
    assert counts_per_chunk(hist, chunks) == naive and sum(naive) == sum(n for _, n in hist)
    assert counts_per_chunk([("2024-02-29 23:59:59", 5), ("2024-03-02 00:00:00", 7)], chunks) == [0] * len(chunks)


def test_day_seconds_cut_the_same_chunks_as_its_histogram():
    import random
    from collections import Counter

    from meccano.export.stream import DaySeconds

    rnd = random.Random(5)
    day = DaySeconds("2024-03-01")
    for _ in range(20):
        day.add(Counter({rnd.randrange(86_400): rnd.randint(1, 40) for _ in range(300)}))
    bounds = ("2024-03-01 00:00:00", "2024-03-02 00:00:00")
    for size in (1, 50, 997, 10**9):
        assert day.chunks(*bounds, size) == build_chunks(busy_seconds(day), *bounds, size)
    assert sum(c.rows for c in day.chunks(*bounds, 50)) == day.rows


@pytest.mark.parametrize(("tables", "conf", "message", "error"), [
    # config.yml problems stop the load; the run's own conf stops the run
    ([{"table": "Facts; DROP"}], {}, "export.tables[0].table", ConfigError),
    ([{"table": "Facts", "retention": 3}], {}, "unknown key(s) retention", ConfigError),
    (None, {"tables": ["Nope"]}, "Nope not configured for export", ExportError),
    (None, {"days": "soon"}, "dag_run.conf days", ExportError),
    (None, {"dry_run": "maybe"}, "dag_run.conf dry_run", ExportError),
])
def test_bad_options_are_named(tables, conf, message, error, tmp_path, monkeypatch):
    cfg = tmp_path / "c.yml"
    cfg.write_text(json.dumps({"default": {"export": {"tables": tables} if tables else {}}}))
    monkeypatch.setenv("MECCANO_CONFIG", str(cfg))
    with pytest.raises(error, match=re.escape(message)):
        load_options(load_settings(), conf)


def _config(tmp_path, monkeypatch, export: dict) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text(json.dumps({"default": {"export": export}}))
    monkeypatch.setenv("MECCANO_CONFIG", str(cfg))


HISTORY = [{"table": "Facts", "dateColumn": "creationDate"},
           {"table": "DeviceHistoryStatus", "dateColumn": "creationDate", "days": 365}]


@pytest.mark.parametrize(("conf", "message"), [
    ({"purge": True}, "dag_run.conf purge: not an export option; allowed: days, tables, dry_run"),
    ({"days": 30, "target": "s3://elsewhere", "maxAgeDays": 1},
     "dag_run.conf maxAgeDays, target: not an export option"),
    ({"days": 0}, "days: 0 is shorter than the configured retention of Facts (3), DeviceHistoryStatus (365)"),
    ({"days": 30}, "days: 30 is shorter than the configured retention of DeviceHistoryStatus (365)"),
])
def test_a_run_may_not_widen_what_it_purges(conf, message, tmp_path, monkeypatch):
    _config(tmp_path, monkeypatch, {"days": 3, "tables": HISTORY})
    with pytest.raises(ExportError, match=re.escape(message)):
        load_options(load_settings(), conf)


def test_a_run_may_keep_more_and_the_configuration_may_allow_less(tmp_path, monkeypatch):
    _config(tmp_path, monkeypatch, {"days": 3, "tables": HISTORY})
    opts = load_options(load_settings(), {"days": 30, "tables": ["Facts"], "dry_run": True})
    assert [(s.table, s.days) for s in opts.tables] == [("Facts", 30)] and opts.dry_run
    opts = load_options(load_settings(), {"days": 400})
    assert [s.days for s in opts.tables] == [400, 400]
    _config(tmp_path, monkeypatch, {"days": 3, "tables": HISTORY, "confMayWiden": True})
    assert [s.days for s in load_options(load_settings(), {"days": 0}).tables] == [0, 0]


def test_other_tables_come_from_configuration(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yml"
    tables = [{"table": "DeviceHistoryStatus", "dateColumn": "creationDate", "days": 30}]
    cfg.write_text(json.dumps({"default": {"export": {"tables": tables}}}))
    monkeypatch.setenv("MECCANO_CONFIG", str(cfg))
    specs = table_specs(load_settings())
    assert [(s.table, s.days, s.prefix) for s in specs] == [("DeviceHistoryStatus", 30, "devicehistorystatus")]


# --- MariaDB -> SeaweedFS -----------------------------------------------------------------

@pytest.mark.services
def test_export_purges_exactly_the_exported_days(iotdb, s3_server, tmp_path, monkeypatch, caplog):
    local = configure_export(tmp_path, monkeypatch)
    bucket, remote = new_bucket(s3_server, monkeypatch, remote="meccano")
    old, recent = seed(iotdb)
    settings = load_settings()
    caplog.set_level(logging.INFO)

    result = run_chain(settings, iotdb, run_id="run1", when=NOW)

    assert result == {"partitions": 3, "rows": 3 * ROWS_PER_DAY, "purged": 3 * ROWS_PER_DAY}
    reader = TargetReader(s3_server.client(), bucket, prefix=f"{remote}/facts")
    keys = reader.keys()
    assert f"{remote}/facts/year=2024/month=03/day=01/part-00000.csv.gz" in keys
    assert f"{remote}/facts/year=2024/month=03/day=03/manifest.json" in keys
    manifests = reader.manifests()
    m = manifests[f"{remote}/facts/year=2024/month=03/day=02"]
    assert m["rows"] == ROWS_PER_DAY and len(m["parts"]) > 1  # bounded part size
    assert m["minDate"].startswith("2024-03-02") and m["maxDate"].startswith("2024-03-02")
    assert [c["name"] for c in m["schema"]][-1] == "creationDate"
    assert all(len(p["sha256"]) == 64 for p in m["parts"])
    assert reader.rows() == old  # every old row exactly once (quoted commas included)
    assert db_rows(iotdb) == recent  # exactly the exported days purged
    assert {e.state for e in ledger_entries(iotdb, "Facts")} == {"purged"}
    # the export task removed its part files
    assert not any((local / f"meccano-export-staging-{os.getuid()}").iterdir())
    assert "rows/s" in caplog.text and "ETA" in caplog.text


@pytest.mark.services
def test_dry_run_and_purge_false_purge_nothing_then_a_real_run_does(iotdb, s3_server, tmp_path, monkeypatch):
    configure_export(tmp_path, monkeypatch)
    bucket, remote = new_bucket(s3_server, monkeypatch)
    old, recent = seed(iotdb)

    run_chain(load_settings(), iotdb, {"dry_run": True, "days": 1}, run_id="dry", when=NOW)
    assert db_rows(iotdb) == old + recent
    assert {e.state for e in ledger_entries(iotdb)} == {"verified"}
    monkeypatch.setenv("EXPORT_PURGE", "false")
    again = run_chain(load_settings(), iotdb, run_id="nopurge", when=NOW)
    assert again["partitions"] == 0  # verified days are not re-exported while nothing is purged
    assert db_rows(iotdb) == old + recent

    monkeypatch.setenv("EXPORT_PURGE", "true")
    run_chain(load_settings(), iotdb, run_id="real", when=NOW)
    assert db_rows(iotdb) == recent
    assert TargetReader(s3_server.client(), bucket, prefix=f"{remote}/facts").rows() == old


@pytest.mark.services
def test_conf_days_and_tables_override(iotdb, s3_server, tmp_path, monkeypatch):
    configure_export(tmp_path, monkeypatch)
    new_bucket(s3_server, monkeypatch)
    seed(iotdb)
    planned = chain.plan_step(load_settings(), iotdb, {"days": 8, "tables": ["Facts"]}, "r", NOW)
    assert [p["day"] for p in planned["partitions"]] == ["2024-03-01"]  # older than 8 days at 03-10
    monkeypatch.setenv("EXPORT_DAYS", "0")
    planned = chain.plan_step(load_settings(), iotdb, {}, "r", NOW)
    assert [p["day"] for p in planned["partitions"]] == [*DAYS, "2024-03-09"]


# --- SQLite -> local folder (the embedded demo) -------------------------------------------

def test_sqlite_demo_exports_to_a_local_folder(sqlite_iotdb, tmp_path, monkeypatch):
    local = configure_export(tmp_path, monkeypatch)
    old, recent = seed(sqlite_iotdb)
    settings = load_settings()
    assert target_url(settings) == f"file://{local.resolve()}/meccano-export"

    run_chain(settings, sqlite_iotdb, run_id="demo", when=NOW)

    reader = TargetReader(root=local / "meccano-export", prefix="facts")
    assert "facts/year=2024/month=03/day=01/part-00000.csv.gz" in set(reader.keys())
    assert reader.rows() == old
    assert db_rows(sqlite_iotdb) == recent


# --- the DAG --------------------------------------------------------------------------------

@pytest.mark.services
def test_s3_export_dag_end_to_end(iotdb, s3_server, airflow_db, tmp_path, monkeypatch):
    from meccano.plugins.factory import build_dags

    configure_export(tmp_path, monkeypatch)
    bucket, remote = new_bucket(s3_server, monkeypatch)
    old, recent = seed(iotdb)
    dag = build_dags(only_dag_id="s3_export")["s3_export"]
    assert [t.task_id for t in dag.topological_sort()] == ["plan", "export", "verify", "purge"]
    assert plain_schedule(dag) == "0 2 * * *"
    outlets = dag.get_task("purge").outlets
    assert [a.uri for a in outlets] == [f"s3://{bucket}/{remote}/facts"]

    run = dag.test(logical_date=datetime(2024, 3, 10, 2, 0, tzinfo=UTC), run_conf={"days": 1})
    assert run.state == "success"
    assert TargetReader(s3_server.client(), bucket, prefix=f"{remote}/facts").rows() == old
    assert db_rows(iotdb) == recent
    [extra] = _asset_events(f"s3://{bucket}/{remote}/facts", run.run_id)  # what downstream DAGs wait for
    assert extra == {"table": "Facts", "days": list(DAYS), "runId": run.run_id, "purged": True}


@pytest.mark.services
def test_a_triggered_run_asking_for_zero_days_fails_and_deletes_nothing(iotdb, s3_server, airflow_db, tmp_path,
                                                                         monkeypatch, caplog):
    from meccano.plugins.factory import build_dags

    configure_export(tmp_path, monkeypatch)
    bucket, remote = new_bucket(s3_server, monkeypatch)
    old, recent = seed(iotdb)
    dag = build_dags(only_dag_id="s3_export")["s3_export"]
    caplog.set_level(logging.INFO)

    run = dag.test(logical_date=datetime(2024, 3, 10, 2, 0, tzinfo=UTC), run_conf={"days": 0})

    assert run.state == "failed"
    assert "dag_run.conf days: 0 is shorter than the configured retention of Facts (1)" in caplog.text
    assert db_rows(iotdb) == old + recent
    assert TargetReader(s3_server.client(), bucket, prefix=f"{remote}/facts").keys() == []
    assert ledger_entries(iotdb) == []


def _asset_events(uri: str, run_id: str) -> list[dict]:
    """The extras of the asset events Airflow recorded for ``uri`` by the run (test-side read of the metadata DB)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(session.scalars(select(AssetEvent.extra).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                                    .where(AssetModel.uri == uri, AssetEvent.source_run_id == run_id)))


def test_one_asset_per_exported_table_named_from_the_real_target(tmp_path, monkeypatch):
    """file:// for the local target, s3://bucket/prefix/<table> for S3, one per table of export.tables; a
    downstream DAG scheduled on one as docs/export.md shows."""
    from airflow.sdk import DAG, Asset

    from meccano.plugins.factory import build_dags

    local = configure_export(tmp_path, monkeypatch)
    cfg = tmp_path / "config.yml"
    cfg.write_text(cfg.read_text() + "    tables:\n      - {table: Facts, dateColumn: creationDate}\n"
                   "      - {table: DeviceHistoryStatus, dateColumn: creationDate, days: 365}\n")

    def outlets() -> list[str]:
        return [a.uri for a in build_dags(only_dag_id="s3_export")["s3_export"].get_task("purge").outlets]

    base = f"file://{local.resolve()}/meccano-export"
    assert outlets() == [f"{base}/facts", f"{base}/devicehistorystatus"]
    monkeypatch.setenv("EXPORT_BUCKET", "ml-iot")
    assert outlets() == ["s3://ml-iot/facts", "s3://ml-iot/devicehistorystatus"]  # no empty path segment
    monkeypatch.setenv("EXPORT_REMOTEDIRECTORY", "/iot/archive/")
    assert outlets() == ["s3://ml-iot/iot/archive/facts", "s3://ml-iot/iot/archive/devicehistorystatus"]

    downstream = DAG("facts_to_warehouse", schedule=[Asset("s3://ml-iot/iot/archive/facts")])
    assert [a.uri for a in downstream.timetable.asset_condition.objects] == ["s3://ml-iot/iot/archive/facts"]


def test_export_disabled_keeps_the_dag_unscheduled(monkeypatch):
    from meccano.plugins.factory import build_dags

    monkeypatch.setenv("EXPORT_ENABLED", "false")
    dag = build_dags(only_dag_id="s3_export")["s3_export"]
    assert plain_schedule(dag) is None and "disabled" in dag.tags  # visible, never scheduled
    monkeypatch.setenv("EXPORT_ENABLED", "true")
    assert "disabled" not in build_dags(only_dag_id="s3_export")["s3_export"].tags


@pytest.mark.parametrize(("executor", "bucket", "shared", "refused"), [
    ("LocalExecutor", "", None, False),
    ("CeleryExecutor", "", None, True),
    ("CeleryExecutor", "", "true", False),
    ("CeleryExecutor", "ml-iot", None, False),
    ("LocalExecutor,KubernetesExecutor", "file:///mnt/exports", None, True),
])
def test_a_local_target_with_workers_on_other_hosts_is_refused_before_anything_is_done(
        executor, bucket, shared, refused, sqlite_iotdb, tmp_path, monkeypatch):
    """With a file:// target the export task would write to one worker's disk and verify read another's."""
    configure_export(tmp_path, monkeypatch)
    seed(sqlite_iotdb)
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    monkeypatch.setenv("EXPORT_BUCKET", bucket)
    if shared is None:
        monkeypatch.delenv("EXPORT_LOCAL_TARGET_SHARED", raising=False)
    else:
        monkeypatch.setenv("EXPORT_LOCAL_TARGET_SHARED", shared)
    if not refused:
        assert len(chain.plan_step(load_settings(), sqlite_iotdb, {}, "r", NOW)["partitions"]) == 3
        return
    with pytest.raises(ExportError) as err:
        chain.plan_step(load_settings(), sqlite_iotdb, {}, "r", NOW)
    assert "runs tasks on other hosts" in str(err.value) and "EXPORT_LOCAL_TARGET_SHARED=true" in str(err.value)
    assert "EXPORT_BUCKET" in str(err.value) and not ledger_entries(sqlite_iotdb)


def test_local_target_rule(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPORT_LOCALDIRECTORY", str(tmp_path))
    monkeypatch.delenv("EXPORT_BUCKET", raising=False)
    monkeypatch.setenv("EXPORT_REMOTEDIRECTORY", "/x/")
    assert target_url(load_settings()) == f"file://{Path(tmp_path).resolve()}/meccano-export/x"
    monkeypatch.setenv("EXPORT_BUCKET", "ml-iot")
    assert target_url(load_settings()) == "s3://ml-iot/x"


def test_server_built_bytes_match_the_python_format(iotdb):
    """The MySQL fast path (server-built UTF-8 lines, nullable and NOT NULL columns) gives exactly the
    bytes the SQLite path formats in Python: quotes, commas, non-ASCII and NULLs included."""
    from meccano.export.csvformat import format_row
    from meccano.export.snapshot import Snapshot, access_hint, date_index, table_columns

    iotdb.execute("INSERT INTO Registration (device, device_group, registrationDate, creationDate, memo, type) "
                  "VALUES (:d, NULL, NULL, '2024-01-01 00:00:01', :m, NULL)", d='dé"v,1', m='a,"b" ü€')
    iotdb.execute("INSERT INTO Registration (device, device_group, registrationDate, creationDate, memo, type) "
                  "VALUES ('plain', 'g', '2024-01-01 00:00:00', '2024-01-01 00:00:02', '', 't')")
    columns = table_columns(iotdb, "Registration")
    ranges = [("2024-01-01 00:00:00", "2024-01-02 00:00:00")]
    with Snapshot(iotdb, 1) as snap:
        blocks = list(snap.blocks("Registration", "creationDate", columns, ranges,
                                  access_hint(date_index(iotdb, "Registration", "creationDate"), False)))
    names = ", ".join(c.name for c in columns)
    expected = {(format_row([r[c.name] for c in columns], [c.kind for c in columns], [c.nullable for c in columns])
                 + "\n").encode()
                for r in iotdb.query(f"SELECT {names} FROM Registration")}
    assert [(b.day, b.rows) for b in blocks] == [("2024-01-01", 1), ("2024-01-01", 1)]
    assert {b.data for b in blocks} == expected
    assert 'dé""v,1'.encode() in b"".join(b.data for b in blocks)
    assert sorted(k for b in blocks for k in b.seconds) == [1, 2]  # seconds of the day


def test_a_bad_export_table_turns_the_export_dag_into_a_visible_error(tmp_path, monkeypatch):
    """export.tables is validated at load with every setting: a bad entry shows as the failing DAG
    meccano_config_error with the message, the other plugins' DAGs still load, and no export runs (its task
    loads the settings again and stops)."""
    from meccano.plugins.factory import CONFIG_ERROR_DAG, build_dags

    configure_export(tmp_path, monkeypatch)
    cfg = tmp_path / "config.yml"
    cfg.write_text(cfg.read_text() + "    tables:\n      - {table: 'Facts; DROP'}\n")
    dags = build_dags()
    assert "deviceHealth" in dags
    error = dags[CONFIG_ERROR_DAG]
    assert "export.tables[0].table" in error.doc_md and "invalid" in error.tags
    with pytest.raises(ConfigError, match=re.escape("export.tables[0].table")):
        load_settings()


@pytest.mark.parametrize(("conf", "message"), [
    ({"days": 1e308}, "dag_run.conf days: 1e+308 is out of range; allowed: 0 to 36500 (whole days)"),
    ({"days": "1e308"}, "dag_run.conf days: '1e308' is out of range; allowed: 0 to 36500 (whole days)"),
    ({"days": 36501}, "dag_run.conf days: 36501 is out of range; allowed: 0 to 36500 (whole days)"),
    ({"days": -1}, "dag_run.conf days: -1 is out of range; allowed: 0 to 36500 (whole days)"),
    ({"tables": ["Facts"] * 101}, "dag_run.conf tables: [\"Facts\", \"Facts\""),
    ({"tables": ["Facts", ["Facts"]]}, "must be a list of 1 to 100 table names"),
    ({"tables": "x" * 20_000}, "must be a list of 1 to 100 table names"),
])
def test_a_runs_conf_is_bounded(conf, message, tmp_path, monkeypatch):
    """A run's ``days`` is a whole number of at most a hundred years (``1e308`` would overflow every date after
    the checks passed); ``tables`` is a short list of names."""
    _config(tmp_path, monkeypatch, {"days": 3, "tables": HISTORY})
    with pytest.raises(ExportError, match=re.escape(message)):
        load_options(load_settings(), conf)


def test_a_table_named_twice_runs_once(tmp_path, monkeypatch):
    _config(tmp_path, monkeypatch, {"days": 3, "tables": HISTORY})
    for tables in ("Facts,Facts", ["Facts", "Facts"], " Facts , Facts,DeviceHistoryStatus,Facts"):
        chosen = [spec.table for spec in load_options(load_settings(), {"tables": tables}).tables]
        assert chosen == (["Facts"] if "Device" not in str(tables) else ["Facts", "DeviceHistoryStatus"]), tables
    assert [s.days for s in load_options(load_settings(), {"tables": "Facts,Facts", "days": 36500}).tables] == [36500]


def test_the_export_dags_params_bound_days_and_tables_at_the_trigger():
    """Airflow checks the Params' schemas when a run is triggered (REST 400), before any task: the same bounds."""
    manifest = json.loads((Path(__file__).resolve().parents[2] / "meccano_plugins" / "s3_export:1.0" /
                           "plugin.json").read_text())
    schemas = manifest["parameterSchemas"]
    assert (schemas["days"]["minimum"], schemas["days"]["maximum"]) == (0, 36500)
    assert (schemas["tables"]["minItems"], schemas["tables"]["maxItems"]) == (1, 100)
