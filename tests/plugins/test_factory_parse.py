"""What the factory does to parse cheaply: shared timetables checked by Airflow once, docs linked, not read."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.timetables import _cron
from airflow.sdk.exceptions import AirflowTimetableInvalid

import meccano.contract.manifest as manifest
import meccano.plugins.factory as factory
from meccano.plugins.factory import build_dags, invalid_dag_id, timetable_for
from tests.support.schedules import plain_schedule

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_timetables(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty timetable cache, so that this test sees its own first builds."""
    monkeypatch.setattr(factory, "_TIMETABLES", {})


@pytest.fixture
def croniter_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every expression Airflow's cron timetables hand to croniter to validate."""
    calls: list[str] = []
    real = _cron.croniter

    def counting(expression: str, *args, **kwargs):
        calls.append(expression)
        return real(expression, *args, **kwargs)

    monkeypatch.setattr(_cron, "croniter", counting)
    return calls


def write_plugins(root: Path, schedules: dict[str, str]) -> Path:
    for name, schedule in schedules.items():
        folder = root / f"{name}:1.0"
        folder.mkdir(parents=True)
        (folder / "plugin.json").write_text(json.dumps({
            "plugin": folder.name, "engine": "native", "enabled": True, "schedule": schedule,
            "description": f"plugin {name}", "type": "worker", "executionContext": "master"}))
        (folder / f"{folder.name}.py").write_text("def entrypoint(context):\n    pass\n")
    return root


def test_dags_sharing_a_schedule_share_one_public_timetable(tmp_path: Path, fresh_timetables,
                                                             croniter_calls: list[str]):
    from airflow.sdk import CronTriggerTimetable

    dags = build_dags(write_plugins(tmp_path, {"a": "7 3 * * *", "b": "7 3 * * *", "c": "*/20 * * * *"}))
    assert dags["a"].timetable is dags["b"].timetable is not dags["c"].timetable
    assert [plain_schedule(dags[n]) for n in "abc"] == ["7 3 * * *", "7 3 * * *", "*/20 * * * *"]
    assert sorted(croniter_calls) == ["*/20 * * * *", "7 3 * * *"]  # checked when each timetable was built
    for dag in dags.values():
        assert type(dag.timetable) is CronTriggerTimetable  # airflow.sdk's own class, nothing patched on it
        assert "validate" not in vars(dag.timetable)
        dag.validate()  # what the DagBag does for every DAG: Airflow's own check, unchanged
    assert len(croniter_calls) == 2 + 3


def test_a_copied_timetable_validates_with_airflows_own_check(fresh_timetables, croniter_calls: list[str]):
    shared = timetable_for("11 4 * * *")
    copy.deepcopy(shared).validate()
    assert croniter_calls == ["11 4 * * *", "11 4 * * *"]


def test_a_schedule_airflow_rejects_is_not_cached(fresh_timetables):
    with pytest.raises(AirflowTimetableInvalid):
        timetable_for("0 0 0 * *")
    assert factory._TIMETABLES == {}


def test_a_schedule_airflow_rejects_becomes_an_invalid_dag(tmp_path: Path, fresh_timetables,
                                                          monkeypatch: pytest.MonkeyPatch):
    # Our own cron check is stricter than Airflow's; to see Airflow's check at work, let
    # a day-of-month 0 (which croniter rejects) through ours.
    monkeypatch.setattr(manifest, "cron_problem", lambda expression: None)
    plugins = write_plugins(tmp_path / "plugins", {"good": "@daily", "zeroDay": "0 0 0 * *"})
    monkeypatch.setenv("MECCANO_PLUGINS_DIR", str(plugins))
    bag = DagBag(dag_folder=str(ROOT / "dags"), bundle_path=ROOT)
    assert bag.import_errors == {}
    assert "good" in bag.dag_ids and "zeroDay" not in bag.dag_ids
    bad = bag.dags[invalid_dag_id(plugins / "zeroDay:1.0")]
    assert "invalid" in bad.tags
    assert "zeroDay:1.0: AirflowTimetableInvalid:" in bad.doc_md


def test_docs_page_is_linked_below_airflows_base_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The DAG docs link the page the Meccano view serves (Airflow 3's UI skips raw HTML in doc_md), below the path
    of ``[api] base_url``; a plugin without a page gets no link."""
    plugins = write_plugins(tmp_path, {"paged": "@daily", "bare": "@daily"})
    (plugins / "paged:1.0" / "assets").mkdir()
    (plugins / "paged:1.0" / "assets" / "index.html").write_text("<p>the page</p>")
    dags = build_dags(plugins)
    assert "* documentation: [assets/index.html](/meccano/plugins/paged:1.0/docs) (served by the Meccano view)" \
        in dags["paged"].doc_md
    assert "the page" not in dags["paged"].doc_md
    assert "documentation" not in dags["bare"].doc_md and "plugin bare" in dags["bare"].doc_md
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://example.test/air flow/")
    assert "](/air%20flow/meccano/plugins/paged:1.0/docs)" in build_dags(plugins)["paged"].doc_md


def test_an_unreadable_base_url_costs_the_link_its_base_path_not_the_dags(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    plugins = write_plugins(tmp_path, {"paged": "@daily"})
    (plugins / "paged:1.0" / "assets").mkdir()
    (plugins / "paged:1.0" / "assets" / "index.html").write_text("<p>the page</p>")

    real_get = factory.conf.get

    def broken(section: str, key: str, *args: object, **kwargs: object) -> object:
        if (section, key) == ("api", "base_url"):
            raise RuntimeError("secrets backend down")
        return real_get(section, key, *args, **kwargs)

    monkeypatch.setattr(factory.conf, "get", broken)
    assert "](/meccano/plugins/paged:1.0/docs)" in build_dags(plugins)["paged"].doc_md
