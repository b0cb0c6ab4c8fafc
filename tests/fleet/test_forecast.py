"""forecastDay against series with a known polynomial answer, and the skip message."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from meccano.errors import ConfigError
from meccano.fleet.forecast import forecast_days
from meccano.iotdb.clock import as_date, db_now
from meccano.settings.config import load_settings
from tests.support import fleet
from tests.support.fleet import facts

any_iotdb = fleet.any_iotdb  # the MariaDB/SQLite fixture


def _daily(db, device, sensor, today, totals):
    """Daily totals for the days before today, oldest first, split over two readings each."""
    rows = []
    n = len(totals)
    for i, total in enumerate(totals):
        day = datetime.combine(today - timedelta(days=n - i), datetime.min.time())
        rows += [(device, sensor, total - total // 2, day + timedelta(hours=3)),
                 (device, sensor, total // 2, day + timedelta(hours=20, minutes=59))]
    facts(db, rows)


def test_quadratic_series_is_forecast_exactly(any_iotdb):
    db = any_iotdb
    now = db_now(db)
    today = now.date()
    f = lambda x: 2 * x * x - 3 * x + 50  # noqa: E731 - x = days since the first history day
    _daily(db, "A", 1, today, [f(x) for x in range(10)])          # days -10 .. -1
    _daily(db, "A", 2, today, [7 * x + 100 for x in range(10)])   # a line: degree 2 fits it too
    _daily(db, "B", 1, today, [1, 2, 3])                          # too short
    facts(db, [("A", 1, 10_000, now.replace(hour=0, minute=0, second=1))])  # today: left out

    run = forecast_days(db, load_settings(), params={"degree": 2, "days": 3}, now=now)
    assert run.today == today
    rows = db.query("SELECT device, sensor, forecastDate, value, degree FROM Forecast_Day")
    got = {(r["device"], r["sensor"], as_date(r["forecastDate"])): r["value"] for r in rows}
    expected = {}
    for k in range(3):
        day = today + timedelta(days=k)
        expected[("A", 1, day)] = f(10 + k)
        expected[("A", 2, day)] = 7 * (10 + k) + 100
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6)
    assert {r["degree"] for r in rows} == {2}
    assert run.skipped == ["device B sensor 1: skipped, 3 day(s) of history in the last 30 days, at least 7 "
                           "needed for degree 2 (raise historyDays or lower degree/minDays)"]

    # re-runnable: the forecasts are replaced, not duplicated; FORECAST_DAYS is the default horizon
    forecast_days(db, load_settings(), params={"degree": 2}, now=now)
    assert db.scalar("SELECT COUNT(*) FROM Forecast_Day") == 2 * 7


def test_history_length_and_degree_from_config(any_iotdb, tmp_path, monkeypatch):
    db = any_iotdb
    today = db_now(db).date()
    # the last 5 days follow 4x + 1; older days are noise the history window must drop
    _daily(db, "A", 1, today, [999, 5, 999, 1, 5, 9, 13, 17])
    cfg = tmp_path / "config.yml"
    cfg.write_text("default:\n  forecast:\n    days: 2\n    degree: 1\n    historyDays: 5\n    minDays: 3\n")
    monkeypatch.setenv("MECCANO_CONFIG", str(cfg))
    run = forecast_days(db, load_settings())
    assert not run.skipped
    assert [round(v, 6) for v in run.forecasts[0].values.values()] == [21.0, 25.0]


def test_no_history_is_a_clear_skip(any_iotdb):
    run = forecast_days(any_iotdb, load_settings())
    assert run.forecasts == []
    assert run.skipped == ["no readings in the last 30 complete days: nothing to forecast"]


def test_bad_degree_is_refused():
    with pytest.raises(ConfigError, match=r"degree .* must be 0 or more"):
        forecast_days(None, load_settings(), params={"degree": -1})  # type: ignore[arg-type]


def test_forecast_days_variable_wins_over_yaml(any_iotdb, monkeypatch):
    db = any_iotdb
    today = db_now(db).date()
    _daily(db, "A", 1, today, [3 * x for x in range(8)])
    monkeypatch.setenv("FORECAST_DAYS", "4")
    run = forecast_days(db, load_settings(), params={"degree": 1})
    assert len(run.forecasts[0].values) == 4
