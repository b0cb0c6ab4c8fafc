"""sensorStatistics: hand-computed answers, the window, one reading, none, the
one-row-per-device/sensor replacement the gateway's filter relies on, and the hour
buckets (late rows, pruning, equality with a full recomputation)."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

import pytest

from meccano.errors import ConfigError
from meccano.fleet.statistics import compute, floor_hour, from_sums, update_statistics
from meccano.iotdb.clock import as_datetime, db_now, param
from meccano.settings.config import load_settings
from tests.support import fleet
from tests.support.fleet import ago, facts

any_iotdb = fleet.any_iotdb  # the MariaDB/SQLite fixture


def _stats(db) -> dict[tuple[str, int], tuple[float, float, float]]:
    rows = db.query("SELECT device, sensor, average, deviation, error FROM DeviceStatistics")
    return {(r["device"], r["sensor"]): (r["average"], r["deviation"], r["error"]) for r in rows}


def _old_row(db, device, sensor, value):
    db.execute("INSERT INTO DeviceStatistics (device, sensor, average, deviation, error, creationDate) "
               "VALUES (:d, :s, :v, :v, :v, :at)", d=device, s=sensor, v=value,
               at=param(db, ago(db_now(db), days=3)))


def test_statistics_by_hand(any_iotdb):
    db = any_iotdb
    now = db_now(db)
    # A/1: 2 4 4 4 5 5 7 9 -> mean 5, population deviation 2, standard error 2/sqrt(8)
    facts(db, [("A", 1, v, ago(now, minutes=i + 1)) for i, v in enumerate([2, 4, 4, 4, 5, 5, 7, 9])])
    facts(db, [("A", 1, 1000, ago(now, minutes=24 * 60 + 1))])    # outside the 24 h window
    facts(db, [("A", 1, -1000, ago(now, minutes=-5))])            # after "now": outside too
    facts(db, [("A", 2, 10, ago(now, minutes=3))])                # one reading
    facts(db, [("B", 1, 10, ago(now, minutes=3)), ("B", 1, 10, ago(now, minutes=4))])  # constant
    _old_row(db, "A", 1, 99.0)
    _old_row(db, "A", 1, 98.0)   # a stray duplicate: replaced too
    _old_row(db, "A", 2, 50.0)   # one reading now: previous statistics kept
    _old_row(db, "C", 1, 7.0)    # no reading in the window: kept

    run = update_statistics(db, load_settings(), now=now)
    assert (run.written, run.skipped) == (2, 1)
    got = _stats(db)
    assert got[("A", 1)] == pytest.approx((5.0, 2.0, 2 / math.sqrt(8)))
    assert got[("B", 1)] == (10.0, 0.0, 0.0)
    assert got[("A", 2)] == (50.0, 50.0, 50.0)
    assert got[("C", 1)] == (7.0, 7.0, 7.0)
    counts = db.query("SELECT device, sensor, COUNT(*) AS n FROM DeviceStatistics GROUP BY device, sensor")
    assert all(r["n"] == 1 for r in counts)   # the gateway reads rows[0]: exactly one row each
    one = next(r for r in run.results if (r.device, r.sensor) == ("A", 2))
    assert (one.n, one.average, one.deviation, one.error) == (1, 10.0, 0.0, 0.0)

    # with minReadings 1 (plugin parameter) the single reading is written: deviation 0, never NaN
    run = update_statistics(db, load_settings(), params={"minReadings": 1}, now=now)
    assert run.written == 3
    assert _stats(db)[("A", 2)] == (10.0, 0.0, 0.0)
    assert all(math.isfinite(v) for row in _stats(db).values() for v in row)


def test_window_comes_from_config(any_iotdb, tmp_path, monkeypatch):
    db = any_iotdb
    now = db_now(db)
    facts(db, [("A", 1, 1, ago(now, minutes=30)), ("A", 1, 3, ago(now, minutes=50)),
               ("A", 1, 100, ago(now, minutes=90))])
    cfg = tmp_path / "config.yml"
    cfg.write_text("default:\n  sensorStatistics:\n    windowHours: 1\n")
    monkeypatch.setenv("MECCANO_CONFIG", str(cfg))
    update_statistics(db, load_settings(), now=now)
    assert _stats(db)[("A", 1)] == (2.0, 1.0, 1 / math.sqrt(2))


def test_no_readings_writes_nothing(any_iotdb):
    run = update_statistics(any_iotdb, load_settings())
    assert (run.written, run.skipped, run.results) == (0, 0, [])
    assert any_iotdb.scalar("SELECT COUNT(*) FROM DeviceStatistics") == 0


def test_exact_sums_do_not_lose_the_deviation():
    # readings 10^9 + {0, 2}: float sums of squares would cancel; exact integers do not
    big = 1_000_000_000
    r = from_sums("d", 1, 2, 2 * big + 2, big**2 + (big + 2) ** 2)
    assert (r.average, r.deviation, r.error) == (big + 1, 1.0, 1 / math.sqrt(2))


def test_bad_option_names_key_and_source():
    with pytest.raises(ConfigError, match=r"windowHours \(from plugin parameter / dag_run.conf 'windowHours'\)"):
        update_statistics(None, load_settings(), params={"windowHours": "soon"})  # type: ignore[arg-type]


def test_replacement_spans_several_delete_batches(any_iotdb):
    db = any_iotdb
    now = db_now(db)
    devices = [f"d{i:04}" for i in range(1500)]  # > DELETE_BATCH pairs
    facts(db, [(d, 1, v, ago(now, minutes=m)) for d in devices for v, m in ((1, 1), (3, 2))])
    update_statistics(db, load_settings(), now=now)
    facts(db, [(d, 1, 5, ago(now, minutes=3)) for d in devices])
    run = update_statistics(db, load_settings(), now=now)
    assert run.written == 1500
    rows = db.query("SELECT COUNT(*) AS n, MIN(average) AS lo, MAX(average) AS hi FROM DeviceStatistics")[0]
    assert (rows["n"], rows["lo"], rows["hi"]) == (1500, 3.0, 3.0)


def test_db_init_creates_buckets_and_no_covering_index(any_iotdb):
    from sqlalchemy import inspect

    insp = inspect(any_iotdb.engine)
    assert "Facts_stats_idx" not in {i["name"] for i in insp.get_indexes("Facts")}  # costs every insert
    assert insp.get_pk_constraint("DeviceStatisticsHour")["constrained_columns"] == ["device", "sensor", "hourStart"]


def _buckets(db) -> dict[tuple[str, int, datetime], tuple[int, int, int]]:
    rows = db.query("SELECT device, sensor, hourStart, n, s1, s2 FROM DeviceStatisticsHour")
    return {(r["device"], r["sensor"], as_datetime(r["hourStart"])): (int(r["n"]), int(r["s1"]), int(r["s2"]))
            for r in rows}


def _key(results):
    return sorted((r.device, r.sensor, r.n, r.average, r.deviation, r.error) for r in results)


def test_late_rows_within_the_look_back_are_re_aggregated(any_iotdb):
    db = any_iotdb
    now = db_now(db)
    facts(db, [("A", 1, 4, ago(now, minutes=70)), ("A", 1, 6, ago(now, minutes=70))])
    update_statistics(db, load_settings(), now=now)
    hour = floor_hour(ago(now, minutes=70))
    assert _buckets(db)[("A", 1, hour)] == (2, 10, 52)
    # committed now, stamped 70 minutes ago: inside the 2 h look-back, so its hour is redone
    facts(db, [("A", 1, 20, ago(now, minutes=70))])
    run = update_statistics(db, load_settings(), now=now)
    assert _buckets(db)[("A", 1, hour)] == (3, 30, 452)
    assert _stats(db)[("A", 1)][0] == 10.0
    assert _key(run.results) == _key(compute(db, run.since, run.until))


def test_buckets_before_the_window_are_pruned(any_iotdb):
    db = any_iotdb
    now = db_now(db)
    facts(db, [("A", 1, 1, ago(now, minutes=30)), ("A", 1, 3, ago(now, minutes=31)),
               ("A", 1, 100, ago(now, minutes=6 * 60))])
    update_statistics(db, load_settings(), now=now)
    assert len(_buckets(db)) in (2, 3)  # the 30/31-minute rows may straddle an hour
    run = update_statistics(db, load_settings(), params={"windowHours": 2}, now=now)
    assert all(hour >= floor_hour(run.since) for _, _, hour in _buckets(db))
    assert 100 not in {s1 for _, s1, _ in _buckets(db).values()}
    assert _stats(db)[("A", 1)] == (2.0, 1.0, 1 / math.sqrt(2))


@pytest.mark.parametrize("window", [24, 5.5])
def test_incremental_equals_a_full_recomputation(any_iotdb, window):
    db = any_iotdb
    now = db_now(db)
    rnd = random.Random(7)
    params = {"windowHours": window, "minReadings": 1}

    def readings(count, newest, oldest):  # values below 1e8: SQLite's SUM of squares stays int64
        return [(f"d{rnd.randrange(6)}", rnd.randrange(1, 4), rnd.randrange(-50_000, 100_000_000),
                 ago(now, seconds=rnd.randrange(newest, oldest))) for _ in range(count)]

    facts(db, readings(600, 0, 30 * 3600))
    first = update_statistics(db, load_settings(), params=params, now=now)
    assert first.hours_aggregated >= int(window)   # the back-fill, one hour at a time
    assert _key(first.results) == _key(compute(db, first.since, first.until))
    # 20 minutes later: new rows, late rows within the look-back; the window moved
    later = now + timedelta(minutes=20)
    facts(db, readings(150, -20 * 60, 0) + readings(80, 0, 100 * 60))
    run = update_statistics(db, load_settings(), params=params, now=later)
    assert run.hours_aggregated <= 4  # steady state: the look-back hours only
    assert run.results and _key(run.results) == _key(compute(db, run.since, run.until))
    assert all(math.isfinite(r.deviation) for r in run.results)


def test_rows_older_than_the_look_back_wait_for_a_rebuild(any_iotdb):
    """Documented behaviour: a row committed with a creationDate older than the look-back
    (and not in the window's partial first hour) is not counted until ``rebuild: 1``."""
    db = any_iotdb
    now = db_now(db)
    facts(db, [("A", 1, 2, ago(now, minutes=10)), ("A", 1, 4, ago(now, minutes=11)),
               ("A", 1, 3, ago(now, minutes=10 * 60))])
    update_statistics(db, load_settings(), now=now)
    facts(db, [("A", 1, 31, ago(now, minutes=5 * 60))])  # arrives 5 h late, between two buckets
    run = update_statistics(db, load_settings(), now=now)
    assert _stats(db)[("A", 1)][0] == 3.0
    assert _key(run.results) != _key(compute(db, run.since, run.until))
    run = update_statistics(db, load_settings(), params={"rebuild": 1}, now=now)
    assert _stats(db)[("A", 1)][0] == 10.0
    assert _key(run.results) == _key(compute(db, run.since, run.until))
    # a longer look-back catches such rows too
    facts(db, [("A", 1, 0, ago(now, minutes=5 * 60))])
    update_statistics(db, load_settings(), params={"lookbackHours": 6}, now=now)
    assert _stats(db)[("A", 1)][0] == 8.0


def test_a_run_with_an_earlier_now_ignores_later_buckets(any_iotdb):
    db = any_iotdb
    now = db_now(db)
    facts(db, [("A", 1, 2, ago(now, minutes=10)), ("A", 1, 4, ago(now, minutes=11)),
               ("A", 1, 90, now + timedelta(hours=2)), ("A", 1, 70, now + timedelta(hours=2))])
    update_statistics(db, load_settings(), now=now + timedelta(hours=3))
    run = update_statistics(db, load_settings(), now=now)
    assert _stats(db)[("A", 1)][0] == 3.0
    assert _key(run.results) == _key(compute(db, run.since, run.until))
