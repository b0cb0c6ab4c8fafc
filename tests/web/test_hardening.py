"""A damaged or hostile report store and plugin folder, through the FastAPI app:
nothing is served from outside its root, one bad entry never takes the view down."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from meccano.contract.manifest import load_plugin
from meccano.reports import charts
from meccano.reports.store import ReportStore, stamp_of
from tests.support.web import admin_token, web_client

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = "TOP-SECRET-OUTSIDE-FILE"
NAME = "updatesByDevice"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NEWER = stamp_of(T0 + timedelta(hours=1))


@pytest.fixture(scope="module")
def jwt() -> str:
    return admin_token()


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db) -> dict:
    """A plugin folder, a report store with one good entry, and secrets outside both."""
    plugins = tmp_path / "plugins"
    shutil.copytree(ROOT / "meccano_plugins" / f"{NAME}:1.0", plugins / f"{NAME}:1.0")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(OUTSIDE)
    (outside / "index.html").write_text(f"<p>{OUTSIDE}</p>")
    reports = tmp_path / "reports"
    out = tmp_path / "out"
    charts.no_data_image(out / "output.png", title="good")
    charts.write_csv(out / "data.csv", ["n"], [[1]])
    good = ReportStore("file://" + str(reports)).publish(load_plugin(plugins / f"{NAME}:1.0").manifest, out, when=T0)
    monkeypatch.setenv("MECCANO_PLUGINS_DIR", str(plugins))
    monkeypatch.setenv("MECCANO_REPORTS_DIR", str(reports))
    return {"plugins": plugins, "reports": reports, "outside": outside, "good": good.stamp,
            "folder": plugins / f"{NAME}:1.0"}


def _entry(site: dict, stamp: str, meta: bytes) -> Path:
    folder = site["reports"] / NAME / stamp
    folder.mkdir(parents=True)
    shutil.copy(site["reports"] / NAME / site["good"] / "output.png", folder / "output.png")
    (folder / "meta.json").write_bytes(meta)
    return folder


def _good_meta(**over) -> dict:
    return {"plugin": f"{NAME}:1.0", "name": NAME, "created_at": T0.isoformat(), "files": ["output.png"], **over}


def _assert_good_one_served(client: TestClient, site: dict) -> None:
    listing = client.get("/meccano/plugins")
    assert listing.status_code == 200
    row = next(r for r in listing.json() if r["folder"] == f"{NAME}:1.0")
    assert row["report"]["stamp"] == site["good"]
    page = client.get("/meccano/")
    assert page.status_code == 200 and f"/reports/{NAME}/{site['good']}/output.png" in page.text
    history = client.get(f"/meccano/reports/{NAME}")
    assert history.status_code == 200 and [h["stamp"] for h in history.json()] == [site["good"]]
    latest = client.get(f"/meccano/reports/{NAME}/latest/data.csv")
    assert latest.status_code == 200 and latest.text.split() == ["n", "1"]


DAMAGED = {
    "array": b'["output.png"]',
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
    "deeply nested object": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "5000-digit number": b"1" * 5000,
    "5000-digit field": json.dumps(_good_meta(plugin=None)).replace("null", "9" * 5000).encode(),
    "invalid UTF-8": json.dumps(_good_meta()).encode().replace(b"1.0", b"\xff\xfe"),
    "files not a list": json.dumps(_good_meta(files="output.png")).encode(),
    "missing fields": b'{"files": ["output.png"]}',
    "huge": json.dumps(_good_meta(pad="x" * 200_000)).encode(),
    "empty": b"",
}


@pytest.mark.parametrize("kind", list(DAMAGED))
def test_damaged_newest_entry_is_skipped_and_the_older_one_served(site, jwt, kind):
    _entry(site, NEWER, DAMAGED[kind])
    _assert_good_one_served(web_client(jwt), site)
    assert web_client(jwt).get(f"/meccano/reports/{NAME}/{NEWER}/output.png").status_code == 404


def test_stamp_folder_with_an_impossible_date_is_skipped(site, jwt):
    _entry(site, "20261399T996199000000Z", json.dumps(_good_meta()).encode())
    _assert_good_one_served(web_client(jwt), site)
    assert web_client(jwt).get(f"/meccano/reports/{NAME}/20261399T996199000000Z/output.png").status_code == 404


def test_symlinked_file_in_an_entry_is_not_followed(site, jwt):
    folder = _entry(site, NEWER, json.dumps(_good_meta(files=["data.csv", "output.png"])).encode())
    (folder / "data.csv").symlink_to(site["outside"] / "secret.txt")
    client = web_client(jwt)
    for path in (f"/meccano/reports/{NAME}/{NEWER}/data.csv", f"/meccano/reports/{NAME}/latest/data.csv"):
        response = client.get(path)
        assert response.status_code == 404 and OUTSIDE not in response.text
    assert client.get(f"/meccano/reports/{NAME}/{NEWER}/output.png").status_code == 200  # the rest is fine


def test_symlinked_meta_json_makes_the_entry_incomplete(site, jwt):
    folder = _entry(site, NEWER, b"")
    (folder / "meta.json").unlink()
    (site["outside"] / "meta.json").write_text(json.dumps(_good_meta()))
    (folder / "meta.json").symlink_to(site["outside"] / "meta.json")
    _assert_good_one_served(web_client(jwt), site)


def test_symlinked_stamp_folder_is_not_followed(site, jwt):
    fake = site["outside"] / "entry"
    fake.mkdir()
    (fake / "meta.json").write_text(json.dumps(_good_meta(files=["secret.csv"])))
    (fake / "secret.csv").write_text(OUTSIDE)
    (site["reports"] / NAME / NEWER).symlink_to(fake, target_is_directory=True)
    client = web_client(jwt)
    _assert_good_one_served(client, site)
    response = client.get(f"/meccano/reports/{NAME}/{NEWER}/secret.csv")
    assert response.status_code == 404 and OUTSIDE not in response.text


def test_symlinked_plugin_folder_in_the_store_is_not_followed(site, jwt):
    fake = site["outside"] / "other"
    shutil.copytree(site["reports"] / NAME, fake / NAME)
    (site["reports"] / "deviceAvgTime").symlink_to(fake / NAME, target_is_directory=True)
    client = web_client(jwt)
    assert client.get("/meccano/reports/deviceAvgTime").json() == []
    assert client.get(f"/meccano/reports/deviceAvgTime/{site['good']}/output.png").status_code == 404


def test_symlinked_assets_folder_is_refused(site, jwt):
    assets = site["folder"] / "assets"
    shutil.rmtree(assets)
    assets.symlink_to(site["outside"], target_is_directory=True)
    client = web_client(jwt)
    for path in ("docs", "assets/index.html", "assets/secret.txt"):
        response = client.get(f"/meccano/plugins/{NAME}:1.0/{path}")
        assert response.status_code == 404 and OUTSIDE not in response.text
    assert client.get("/meccano/plugins").status_code == 200


def test_symlink_inside_assets_is_refused(site, jwt):
    assets = site["folder"] / "assets"
    (assets / "sub").symlink_to(site["outside"], target_is_directory=True)
    (assets / "leak.html").symlink_to(site["outside"] / "index.html")
    client = web_client(jwt)
    for path in ("assets/sub/secret.txt", "assets/leak.html"):
        response = client.get(f"/meccano/plugins/{NAME}:1.0/{path}")
        assert response.status_code == 404 and OUTSIDE not in response.text
    assert client.get(f"/meccano/plugins/{NAME}:1.0/docs").status_code == 200


@pytest.mark.parametrize("path", ["/".join(["a"] * 15_000), "x" * 5000, "/".join(["d" * 255] * 20),
                                  "a/" * 3 + "b" * 300, "b" * 300])
def test_paths_the_os_refuses_are_404(site, jwt, path):
    client = web_client(jwt)
    assert client.get(f"/meccano/plugins/{NAME}:1.0/assets/{path}").status_code == 404
    assert client.get(f"/meccano/reports/{NAME}/latest/{path}").status_code == 404
    assert client.get(f"/meccano/reports/{path}").status_code in (200, 404)


def test_fsguard_turns_every_os_refusal_into_not_found(tmp_path: Path):
    from meccano.files.guard import read_beneath

    (tmp_path / "ok.txt").write_text("ok")
    assert read_beneath(tmp_path, ["ok.txt"], 10) == b"ok"
    for parts in (["b" * 300], ["ok.txt", "x"], ["missing"], ["ok.txt"] * 65, []):
        with pytest.raises(FileNotFoundError):
            read_beneath(tmp_path, parts, 10)
    with pytest.raises(FileNotFoundError):
        read_beneath(tmp_path, ["ok.txt"], 1)  # over the size limit
