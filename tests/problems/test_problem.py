"""The one shape of a problem: rendered one way, URL credentials masked in the text and in the JSON fields."""

from __future__ import annotations

from meccano.problems import Problem, Severity


def test_a_problem_renders_label_within_where_message_and_fix():
    assert str(Problem("schedule", "invalid schedule", within="a:1.0")) == "a:1.0: schedule: invalid schedule"
    assert str(Problem("pool 'iotdb'", "absent", "db upgrade", label="MISSING")) == \
        "MISSING pool 'iotdb': absent. Fix: db upgrade"
    assert str(Problem("schedule", "bad", within="a:1.0").relative()) == "schedule: bad"


def test_a_problem_never_shows_url_credentials():
    problem = Problem("export.bucket", "s3://KEY:Sec-ret-1@bucket refused", "set s3://u:Sec-ret-2@b",
                      Severity.WARNING, within="mysql://sm:Sec-ret-3@db")
    for shown in (str(problem), repr(problem.masked()), str(problem.as_json())):
        assert "Sec-ret" not in shown, shown
    assert problem.as_json() == {"severity": "warning", "where": "export.bucket",
                                 "message": "s3://KEY:***@bucket refused", "fix": "set s3://u:***@b",
                                 "within": "mysql://sm:***@db"}
