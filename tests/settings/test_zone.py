"""The fleet's time zone: crons in timezone/TZ (daylight saving included), an unknown zone a
configuration error naming key, source and value, the export's day around local midnight,
and times shown with their zone."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pendulum
import pytest

from meccano.errors import ConfigError
from meccano.settings.config import load_settings


def _next_runs(dag, after: datetime, count: int) -> list[datetime]:
    """What the scheduler computes: the serialized DAG's timetable, after ``after``."""
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.timetables.base import DataInterval, TimeRestriction

    timetable = DagSerialization.from_dict(DagSerialization.to_dict(dag)).timetable
    last = DataInterval(pendulum.instance(after), pendulum.instance(after))
    out = []
    for _ in range(count):
        info = timetable.next_dagrun_info(last_automated_data_interval=last,
                                          restriction=TimeRestriction(earliest=None, latest=None, catchup=True))
        out.append(info.run_after)
        last = info.data_interval
    return out


def test_default_zone_is_brazil_east_and_crons_run_in_it(monkeypatch):
    from meccano.plugins.factory import build_dags

    monkeypatch.delenv("TZ", raising=False)
    dag = build_dags(only_dag_id="s3_export")["s3_export"]
    assert dag.timetable.timezone == "Brazil/East"
    # "0 2 * * *" is 02:00 in Sao Paulo = 05:00 UTC (not 02:00 UTC = 23:00 local, during store hours)
    assert _next_runs(dag, datetime(2026, 6, 1, 12, tzinfo=UTC), 1) == [datetime(2026, 6, 2, 5, tzinfo=UTC)]


def test_daylight_saving_change_keeps_local_time(monkeypatch):
    """Brazil had daylight saving until 2019: on 2018-11-04 clocks jumped 00:00 -> 01:00."""
    from meccano.plugins.factory import build_dags

    monkeypatch.setenv("TZ", "America/Sao_Paulo")
    dag = build_dags(only_dag_id="s3_export")["s3_export"]
    runs = _next_runs(dag, datetime(2018, 11, 2, 5, tzinfo=UTC), 3)
    assert runs == [datetime(2018, 11, 3, 5, tzinfo=UTC), datetime(2018, 11, 4, 4, tzinfo=UTC),
                    datetime(2018, 11, 5, 4, tzinfo=UTC)]
    assert {r.astimezone(pendulum.timezone("America/Sao_Paulo")).hour for r in runs} == {2}


def test_other_zone_from_tz(monkeypatch):
    from meccano.plugins.factory import build_dags

    monkeypatch.setenv("TZ", "Europe/Lisbon")
    dag = build_dags(only_dag_id="s3_export")["s3_export"]
    assert _next_runs(dag, datetime(2026, 7, 1, 12, tzinfo=UTC), 1) == [datetime(2026, 7, 2, 1, tzinfo=UTC)]


@pytest.mark.parametrize("env", [{"TZ": "Mars/Olympus_Mons"}, {"TZ": "../../etc/passwd"}])
def test_unknown_zone_is_a_configuration_error(env):
    with pytest.raises(ConfigError) as err:
        load_settings(env=env)
    text = str(err.value)
    assert text.startswith("timezone (from environment variable TZ): unknown time zone")
    assert repr(env["TZ"]) in text and "America/Sao_Paulo" in text


def test_unknown_zone_in_yaml_names_the_file(tmp_path):
    cfg = tmp_path / "config.yml"
    cfg.write_text("default:\n  timezone: Brasil/Leste\n")
    with pytest.raises(ConfigError, match=r"timezone \(from .*config.yml \[default\]\): unknown time zone "
                                          r"'Brasil/Leste'"):
        load_settings(cfg, env={})


def test_posix_colon_form_accepted():
    assert load_settings(env={"TZ": ":America/Sao_Paulo"}).timezone == "America/Sao_Paulo"


def test_unknown_zone_shows_as_config_error_dag_and_in_config_show(monkeypatch, capsys):
    from meccano.cli.main import main
    from meccano.plugins.factory import CONFIG_ERROR_DAG, build_dags

    monkeypatch.setenv("TZ", "Nowhere/Land")
    dags = build_dags()
    assert CONFIG_ERROR_DAG in dags and "Nowhere/Land" in dags[CONFIG_ERROR_DAG].doc_md
    assert "s3_export" in dags  # the plugins still load (default zone)
    assert main(["config", "show"]) == 2
    assert "timezone (from environment variable TZ): unknown time zone 'Nowhere/Land'" in capsys.readouterr().err


def test_export_day_is_the_iotdbs_local_day_around_midnight(iotdb, mariadb):
    """The IOTDB runs at UTC-3: a row at 23:30 local belongs to its local day, and with EXPORT_DAYS=1
    that day is exported only once the next local day is over, never 3 hours early (the UTC day)."""
    from meccano.export import chain

    mariadb.sql("SET GLOBAL time_zone = '-03:00'")
    try:
        iotdb.dispose()
        iotdb.execute("INSERT INTO Facts (channel, year, month, day, week_day, hour, minute, second, device_group, "
                      "device, sensor, data, creationDate) VALUES ('c', 2024, 3, 9, 6, 23, 30, 0, 'g', 'd1', 1, 5, "
                      "'2024-03-09 23:30:00')")
        settings = load_settings()

        def days(when: datetime) -> list[str]:
            planned = chain.plan_step(settings, iotdb, {}, "r", when)
            return [p["day"] for p in planned["partitions"] if p["table"] == "Facts"]

        # 2024-03-10 22:30 local (01:30 UTC on the 11th): the 10th is not over -> the 9th is still kept
        assert days(datetime(2024, 3, 11, 1, 30, tzinfo=UTC)) == []
        # 2024-03-11 00:30 local: the 10th is over -> the 9th (with its 23:30 row) is exported
        assert days(datetime(2024, 3, 11, 3, 30, tzinfo=UTC)) == ["2024-03-09"]
        assert chain.reference_time(settings, datetime(2024, 3, 11, 3, 30, tzinfo=UTC), iotdb) == \
            datetime(2024, 3, 11, 0, 30)
    finally:
        mariadb.sql("SET GLOBAL time_zone = 'SYSTEM'")
        iotdb.dispose()


def test_sqlite_iotdb_day_is_utc(sqlite_iotdb):
    from meccano.export import chain

    assert chain.reference_time(load_settings(), datetime(2024, 3, 11, 1, 30, tzinfo=UTC), sqlite_iotdb) == \
        datetime(2024, 3, 11, 1, 30)


def test_page_and_listing_show_times_in_the_fleet_zone():
    from meccano.web.listing import Links, PluginRow
    from meccano.web.page import render_page

    row = PluginRow(plugin="a:1.0", engine="native", enabled=True, schedule="0 2 * * *", description="d",
                    type="worker", executionContext="master", folder="a:1.0", name="a", version="1.0", dag_id="a",
                    valid=True, errors=[], shadowed_by=None, paused=False, last_run=None,
                    next_run=datetime(2026, 11, 28, 5, 0, tzinfo=UTC).astimezone(pendulum.timezone("Brazil/East")),
                    timezone="Brazil/East", report=None,
                    links=Links(dag="/dags/a", docs=None, report=None, report_data=None, report_history=None))
    assert row.model_dump(mode="json")["next_run"] == "2026-11-28T02:00:00-03:00"
    html = render_page([row], "/meccano/plugins", "Brazil/East")
    assert "2026-11-28 02:00 -03" in html and "Schedule (Brazil/East)" in html


def test_replaced_original_settings_warn_once_and_show(airflow_pool, sqlite_iotdb, monkeypatch, caplog, capsys):
    from meccano.cli.main import main
    from meccano.settings import legacy

    monkeypatch.setattr(legacy, "_WARNED", set())
    env = {"SCHEDULER_EXPORT": "0 2 * * *", "MIRROR": "sm2.local", "SCHEDULER_DEVICES": "*/5 * * * *"}
    caplog.set_level(logging.WARNING, logger="meccano.settings.config")
    first = load_settings(env=env)
    load_settings(env=env)
    names = [i.name for i in first.ignored]
    assert names == ["MIRROR", "SCHEDULER_DEVICES", "SCHEDULER_EXPORT"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 3  # once each, not once per load
    assert any("SCHEDULER_EXPORT" in w and "s3_export:1.0" in w for w in warnings)
    assert any("MIRROR" in w and "scheduler HA" in w for w in warnings)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "ignored: SCHEDULER_EXPORT (scheduler.export, from environment variable SCHEDULER_EXPORT)" in out
    assert "time zone: Brazil/East" in out and "'iotdb' with 10 slots" in out


def test_replaced_yaml_key_marked_too(tmp_path):
    cfg = tmp_path / "config.yml"
    cfg.write_text("default:\n  scheduler:\n    statistics: '*/10 * * * *'\n")
    [item] = load_settings(cfg, env={}).ignored
    assert item.name == "SCHEDULER_STATISTICS" and "config.yml" in item.source


def test_shipped_config_warns_about_nothing():
    assert load_settings(env={}).ignored == ()
