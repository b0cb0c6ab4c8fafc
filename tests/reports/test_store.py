"""The report store (local folder and SeaweedFS S3) and the chart helpers."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from meccano.contract.manifest import load_plugin
from meccano.errors import ConfigError, ReportStoreError
from meccano.reports import charts
from meccano.reports.store import ReportStore, publish_outputs
from meccano.settings.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def manifest():
    load = load_plugin(ROOT / "meccano_plugins" / "updatesByDevice:1.0")
    assert load.valid, load.problems
    return load.manifest


def _output(tmp_path: Path, n: int) -> Path:
    out = tmp_path / f"out{n}"
    charts.no_data_image(out / "output.png", title=f"report {n}")
    charts.write_csv(out / "data.csv", ["n"], [[n]])
    (out / "scratch.tmp").write_text("not published")
    return out


def test_publish_keeps_latest_and_bounded_history(tmp_path, manifest):
    store = ReportStore("file://" + str(tmp_path / "store"), history=3)
    for n in range(5):
        store.publish(manifest, _output(tmp_path, n), when=T0 + timedelta(minutes=n))
    history = store.history_of("updatesByDevice")
    assert [e.created_at for e in history] == [T0 + timedelta(minutes=n) for n in (4, 3, 2)]
    latest = store.latest("updatesByDevice")
    assert latest == history[0]
    assert latest.files == ("data.csv", "output.png")  # scratch files stay behind
    assert store.read("updatesByDevice", latest.stamp, "data.csv").decode().split() == ["n", "4"]
    assert png_size(store.read("updatesByDevice", latest.stamp, "output.png"))[0] > 0
    assert store.names() == ["updatesByDevice"]


def test_links_in_the_report_folder_are_not_followed(tmp_path, manifest, caplog):
    out = tmp_path / "out"
    charts.no_data_image(out / "output.png", title="report")
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("JWT_SECRET=hunter2")
    (out / "data.csv").symlink_to(secret)  # to a file outside
    (out / "more.json").symlink_to(secret.parent)  # to a folder outside
    store = ReportStore("file://" + str(tmp_path / "store"))

    entry = store.publish(manifest, out, when=T0)

    assert entry.files == ("output.png",)
    published = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert not any(b"hunter2" in p.read_bytes() for p in published)
    assert sorted(p.name for p in published) == ["meta.json", "output.png"]
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(f"{out / 'data.csv'} is a symbolic link" in m for m in warned)
    assert any(f"{out / 'more.json'} is a symbolic link" in m for m in warned)


def test_a_linked_chart_is_no_chart(tmp_path, manifest):
    outside = tmp_path / "elsewhere"
    charts.no_data_image(outside / "output.png", title="not the script's")
    out = tmp_path / "out"
    out.mkdir()
    (out / "output.png").symlink_to(outside / "output.png")
    with pytest.raises(ReportStoreError, match=r"wrote no output\.png"):
        ReportStore("file://" + str(tmp_path / "store")).publish(manifest, out, when=T0)


def test_incomplete_entry_is_not_latest(tmp_path, manifest):
    store = ReportStore("file://" + str(tmp_path / "store"))
    done = store.publish(manifest, _output(tmp_path, 1), when=T0)
    partial = tmp_path / "store" / "updatesByDevice" / "20990101T000000000000Z"
    partial.mkdir()
    (partial / "output.png").write_bytes(b"half")  # no meta.json: still being written
    assert store.latest("updatesByDevice") == done


@pytest.mark.parametrize("name,stamp,filename", [
    ("..", "20260301T120000000000Z", "output.png"),
    ("updatesByDevice", "..", "output.png"),
    ("updatesByDevice", "20260301T120000000000Z", "../meta.json"),
    ("updatesByDevice", "20260301T120000000000Z", "/etc/passwd"),
    ("updatesByDevice", "20260301T120000000000Z", "meta.json"),  # not a published file
    ("updatesByDevice", "20260301T120000000000Z", "scratch.tmp"),
])
def test_read_refuses_anything_but_published_files(tmp_path, manifest, name, stamp, filename):
    store = ReportStore("file://" + str(tmp_path / "store"))
    store.publish(manifest, _output(tmp_path, 1), when=T0)
    with pytest.raises(FileNotFoundError):
        store.read(name, stamp, filename)


def test_report_without_chart_is_a_clear_error(tmp_path, manifest):
    out = tmp_path / "empty"
    out.mkdir()
    (out / "data.csv").write_text("a\n1\n")
    with pytest.raises(ReportStoreError, match=r"updatesByDevice:1.0 wrote no output.png .*data.csv"):
        ReportStore("file://" + str(tmp_path / "store")).publish(manifest, out)


def test_publish_outputs_uses_settings_and_cleans_up(tmp_path, manifest):
    out = _output(tmp_path, 7)
    publish_outputs(manifest, out, Settings(reports_dir=str(tmp_path / "reports")))
    assert not out.exists()
    meta = json.loads(next((tmp_path / "reports" / "updatesByDevice").glob("*/meta.json")).read_text())
    assert meta["plugin"] == "updatesByDevice:1.0" and meta["files"] == ["data.csv", "output.png"]


def test_default_root_is_under_airflow_home(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert ReportStore.from_settings(Settings()).location == f"file://{tmp_path}/meccano-reports"


def test_s3_store_round_trip(s3_server, tmp_path, manifest, monkeypatch):
    s3_server.client().create_bucket(Bucket="meccano-reports-test")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.connection_uri())
    store = ReportStore.from_settings(Settings(reports_dir="s3://meccano-reports-test/reports"))
    assert store.location == "s3://meccano-reports-test/reports" and store.conn_id == "aws_default"
    store.history = 2
    for n in range(3):
        store.publish(manifest, _output(tmp_path, n), when=T0 + timedelta(hours=n))
    latest = store.latest("updatesByDevice")
    assert latest.created_at == T0 + timedelta(hours=2)
    assert store.read("updatesByDevice", latest.stamp, "data.csv").decode().split() == ["n", "2"]
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket="meccano-reports-test")["Contents"]]
    assert len({k.split("/")[2] for k in keys}) == 2, keys  # history bounded on S3 too


def test_fold_top_n_sorts_and_folds_others():
    values = {f"dev{i:02d}": i for i in range(30)}
    bars = charts.fold_top_n(values, top_n=5, others="sum")
    assert [b.label for b in bars[:5]] == ["dev29", "dev28", "dev27", "dev26", "dev25"]
    assert bars[5].others == 25 and bars[5].value == sum(range(25))
    assert bars[5].label == "others (25 devices, total)"
    mean = charts.fold_top_n(values, top_n=28, others="mean")
    assert mean[-1].value == 0.5 and len(mean) == 29
    assert len(charts.fold_top_n({"a": 1}, top_n=5)) == 1


def test_charts_write_readable_pngs(tmp_path):
    bars = charts.fold_top_n({f"d{i}": i for i in range(100)}, top_n=25)
    w, h = png_size(charts.bar_chart(tmp_path / "bars.png", bars, title="t", value_label="v (s)",
                                     category_label="device").read_bytes())
    assert w == 1000 and 300 <= h <= 1200  # 26 bars: taller than the minimum, not a wall
    w, h = png_size(charts.no_data_image(tmp_path / "none.png", title="t").read_bytes())
    assert (w, h) == (1000, 300)


# --- a local store on several hosts -------------------------------------------------------------

@pytest.mark.parametrize(("executor", "split"), [
    ("LocalExecutor", False),
    ("alias_local:airflow.executors.local_executor.LocalExecutor", False),
    ("CeleryExecutor", True),
    ("LocalExecutor,CeleryExecutor", True),
    ("KubernetesExecutor", True),
    ("my_company.executors.FleetExecutor", True),
])
def test_a_local_store_with_an_executor_that_spreads_tasks_is_refused(executor, split, tmp_path, manifest,
                                                                    monkeypatch):
    """Reports published to one worker's disk would be invisible to the others and to other API servers:
    the publication fails loudly with the fix, and leaves nothing on the worker."""
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    monkeypatch.delenv("MECCANO_REPORTS_SHARED", raising=False)
    out = _output(tmp_path, 1)
    settings = Settings(reports_dir=str(tmp_path / "reports"))
    if not split:
        publish_outputs(manifest, out, settings)
        assert len(ReportStore.from_settings(settings).history_of("updatesByDevice")) == 1
        return
    with pytest.raises(ReportStoreError) as err:
        publish_outputs(manifest, out, settings)
    message = str(err.value)
    assert f"local folder {tmp_path / 'reports'}" in message and "runs tasks on other hosts" in message
    assert "s3://" in message and "MECCANO_REPORTS_SHARED=true" in message
    assert not (tmp_path / "reports").exists() and not out.exists()


def test_a_shared_folder_declared_as_such_or_an_s3_store_is_accepted(tmp_path, manifest, monkeypatch, caplog):
    from meccano.reports.store import split_store_problem

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    settings = load_settings(env={"MECCANO_REPORTS_DIR": str(tmp_path / "reports"), "MECCANO_REPORTS_SHARED": "true"})
    publish_outputs(manifest, _output(tmp_path, 1), settings)
    assert len(ReportStore.from_settings(settings).history_of("updatesByDevice")) == 1
    # a bad value is a configuration problem, named at load
    with pytest.raises(ConfigError, match=r"reports\.shared / MECCANO_REPORTS_SHARED: 'maybe' is not a boolean"):
        load_settings(env={"MECCANO_REPORTS_SHARED": "maybe"})
    assert split_store_problem(Settings(reports_dir="s3://meccano-reports/r")) is None
    caplog.set_level("WARNING")
    for _ in range(3):  # what the web view does on every request: one loud warning, not one per request
        ReportStore.from_settings(Settings(reports_dir=str(tmp_path / "other")))
    assert caplog.text.count("REPORTS WILL BE SPLIT BETWEEN HOSTS") == 1
