"""The web view's API: the FastAPI app under /meccano with Airflow's own auth manager."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from meccano.plugins.factory import invalid_dag_id
from meccano.settings.config import Secret
from meccano.web.settings import web_settings
from tests.support.web import OUTSIDE, SECRETS, admin_token, web_client

ROOT = Path(__file__).resolve().parents[2]
ORIGINAL = ("plugin", "engine", "enabled", "schedule", "description", "type", "executionContext")


@pytest.fixture(scope="module", autouse=True)
def jwt() -> str:
    """Airflow's auth manager (as in the API server) and an admin's token from it."""
    return admin_token()




def _client(jwt: str | None = None, **web) -> TestClient:
    from meccano.settings.config import load_settings

    settings = web_settings(load_settings())
    if web:
        settings = settings.model_copy(update=web)
    return web_client(jwt, settings)


def test_listing_shape_and_original_fields(plugins_root, jwt, airflow_db):
    response = _client(jwt).get("/meccano/plugins")
    assert response.status_code == 200
    rows = {r["folder"]: r for r in response.json()}
    assert set(rows) == {"updatesByDevice:1.0", "deviceAvgTime:1.0", "updatesByDevice:0.9", "broken:1.0",
                         "garbled:1.0"}
    for folder in ("updatesByDevice:1.0", "deviceAvgTime:1.0"):
        original = json.loads((plugins_root / folder / "plugin.json").read_text())
        assert {k: rows[folder][k] for k in ORIGINAL} == {k: original[k] for k in ORIGINAL}
        assert rows[folder]["valid"] is True and rows[folder]["errors"] == []
    row = rows["updatesByDevice:1.0"]
    assert row["dag_id"] == "updatesByDevice" and row["version"] == "1.0"
    assert row["links"]["docs"] == "/meccano/plugins/updatesByDevice:1.0/docs"
    assert row["links"]["dag"] == "/dags/updatesByDevice"
    assert row["links"]["report"] is None and row["report"] is None  # nothing published yet
    assert set(row) >= {"last_run", "next_run", "paused", "links", "shadowed_by"}
    assert rows["updatesByDevice:0.9"]["shadowed_by"] == "updatesByDevice:1.0"


def test_invalid_plugins_listed_with_errors(plugins_root, jwt, airflow_db):
    rows = {r["folder"]: r for r in _client(jwt).get("/meccano/plugins").json()}
    broken = rows["broken:1.0"]
    assert broken["valid"] is False and broken["dag_id"] == invalid_dag_id(plugins_root / "broken:1.0")
    assert broken["engine"] == "cobol" and broken["enabled"] == "yes"  # as written, unchanged
    assert any(e.startswith("engine: unknown engine 'cobol'") for e in broken["errors"])
    assert any(e.startswith("enabled: must be true or false") for e in broken["errors"])
    garbled = rows["garbled:1.0"]
    assert garbled["valid"] is False and garbled["plugin"] is None
    assert any("invalid JSON at line 1" in e for e in garbled["errors"])


def test_listing_shows_last_run_and_latest_report(plugins_root, jwt, airflow_db, sqlite_iotdb):
    from meccano.plugins.factory import build_dags

    sqlite_iotdb.execute("INSERT INTO Facts (channel, year, month, day, week_day, hour, minute, second, "
                         "device_group, device, sensor, data, creationDate) VALUES "
                         "('c', 2026, 1, 1, 1, 0, 0, 0, 'g', 'dev1', 1, 1, CURRENT_TIMESTAMP)")
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC) + timedelta(seconds=1)
    run = build_dags(only_dag_id="updatesByDevice")["updatesByDevice"].test(logical_date=now)
    assert run.state == "success"
    client = _client(jwt)
    row = next(r for r in client.get("/meccano/plugins").json() if r["folder"] == "updatesByDevice:1.0")
    assert row["last_run"]["state"] == "success" and row["last_run"]["run_id"] == run.run_id
    chart = client.get(row["links"]["report"])
    assert chart.status_code == 200 and chart.headers["content-type"] == "image/png"
    assert chart.content[:4] == b"\x89PNG"
    data = client.get(row["links"]["report_data"])
    assert data.text.splitlines() == ["device,updates", "dev1,1"]
    latest = client.get("/meccano/reports/updatesByDevice/latest/data.csv")
    assert latest.text == data.text and latest.headers["cache-control"] == "no-cache"
    history = client.get("/meccano/reports/updatesByDevice").json()
    assert [h["stamp"] for h in history] == [row["report"]["stamp"]]
    page = client.get("/meccano/")
    assert page.status_code == 200 and f'src="{row["links"]["report"]}"' in page.text


def test_docs_and_assets(plugins_root, jwt):
    client = _client(jwt)
    docs = client.get("/meccano/plugins/updatesByDevice:1.0/docs")
    assert docs.status_code == 200 and "<h1>updatesByDevice:1.0</h1>" in docs.text
    assert "sandbox" in docs.headers["content-security-policy"]
    assert client.get("/meccano/plugins/updatesByDevice:1.0/assets/index.html").text == docs.text


def test_listing_links_only_a_docs_page_the_view_serves(plugins_root, jwt):
    """A page that is a link is not served, so the listing gives no link to it (`plugins list` warns why)."""
    page = plugins_root / "deviceAvgTime:1.0" / "assets" / "index.html"
    page.unlink()
    page.symlink_to(plugins_root / "updatesByDevice:1.0" / "assets" / "index.html")
    client = _client(jwt)
    rows = {row["plugin"]: row for row in client.get("/meccano/plugins").json()}
    served = rows["updatesByDevice:1.0"]["links"]["docs"]
    assert served == "/meccano/plugins/updatesByDevice:1.0/docs" and client.get(served).status_code == 200
    assert rows["deviceAvgTime:1.0"]["links"]["docs"] is None
    assert client.get("/meccano/plugins/deviceAvgTime:1.0/docs").status_code == 404


@pytest.mark.parametrize("path", [
    "/meccano/plugins/updatesByDevice:1.0/assets/../plugin.json",
    "/meccano/plugins/updatesByDevice:1.0/assets/..%2Fplugin.json",
    "/meccano/plugins/updatesByDevice:1.0/assets/%2E%2E%2F%2E%2E%2Fsecret.txt",
    "/meccano/plugins/updatesByDevice:1.0/assets/..%2F..%2F..%2Fsecret.txt",
    "/meccano/plugins/updatesByDevice:1.0/assets//etc/passwd",
    "/meccano/plugins/updatesByDevice:1.0/assets/%2Fetc%2Fpasswd",
    "/meccano/plugins/updatesByDevice:1.0/assets/leak.txt",  # a symlink out of assets/
    "/meccano/plugins/..%2Fsecret.txt/docs",
    "/meccano/plugins/%2E%2E/docs",
    "/meccano/plugins/%2Fetc/assets/passwd",
    "/meccano/reports/..%2F..%2Fsecret.txt/latest/output.png",
    "/meccano/reports/updatesByDevice/..%2F..%2F..%2Fsecret.txt/output.png",
    "/meccano/reports/updatesByDevice/latest/..%2Fmeta.json",
    "/meccano/reports/updatesByDevice/latest/%2Fetc%2Fpasswd",
    "/meccano/reports/%2Fetc",
])
def test_traversal_rejected(plugins_root, jwt, path):
    response = _client(jwt).get(path)
    assert response.status_code in (400, 404), (path, response.status_code)
    assert OUTSIDE not in response.text and "root:" not in response.text


@pytest.mark.parametrize("path", ["/meccano/", "/meccano/plugins", "/meccano/plugins/updatesByDevice:1.0/docs",
                                  "/meccano/reports/updatesByDevice",
                                  "/meccano/reports/updatesByDevice/latest/output.png"])
def test_login_required(plugins_root, path):
    client = _client()
    assert client.get(path).status_code == 401
    # a forged token: Airflow answers 403 (invalid JWT), never the content
    assert client.get(path, headers={"Authorization": "Bearer not-a-jwt"}).status_code in (401, 403)
    assert client.get(path, cookies={"_token": "forged"}).status_code in (401, 403)


def test_cookie_login_works(plugins_root, jwt):
    client = _client()
    assert client.get("/meccano/", cookies={"_token": jwt}).status_code == 200


def test_console_token_reads_listing_only(plugins_root):
    client = _client()
    assert client.get("/meccano/plugins", headers={"X-Meccano-Token": SECRETS[2]}).status_code == 200
    assert client.get("/meccano/plugins", headers={"Authorization": f"Bearer {SECRETS[2]}"}).status_code == 200
    assert client.get("/meccano/plugins", headers={"X-Meccano-Token": "wrong"}).status_code == 401
    assert client.get("/meccano/", headers={"X-Meccano-Token": SECRETS[2]}).status_code == 401
    assert client.get("/meccano/plugins/updatesByDevice:1.0/docs",
                      headers={"X-Meccano-Token": SECRETS[2]}).status_code == 401


def test_no_token_configured_means_no_token_access(plugins_root):
    client = _client(console_token=Secret(""))
    assert client.get("/meccano/plugins", headers={"X-Meccano-Token": ""}).status_code == 401


def test_allow_list(plugins_root):
    import ipaddress

    from meccano.settings.config import load_settings
    from meccano.web.app import create_app

    def client_from(host: str) -> TestClient:
        allow = {"MECCANO_WEB_CONSOLE_ALLOW": "10.1.0.0/16, 127.0.0.1"}
        settings = web_settings(load_settings(env={**os.environ, **allow}))
        assert settings.allow_list == (ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("127.0.0.1/32"))
        outer = FastAPI()
        outer.mount("/meccano", create_app(settings))
        return TestClient(outer, client=(host, 40000))

    assert client_from("10.1.2.3").get("/meccano/plugins").status_code == 200
    assert client_from("127.0.0.1").get("/meccano/plugins").status_code == 200
    assert client_from("10.2.0.1").get("/meccano/plugins").status_code == 401
    assert client_from("10.1.2.3").get("/meccano/").status_code == 401  # the page still needs a login


def test_cors_limited_to_configured_origins(plugins_root):
    client = _client(cors_origins=("https://console.example.com",))
    preflight = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-meccano-token"}
    ok = client.options("/meccano/plugins", headers={"Origin": "https://console.example.com", **preflight})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://console.example.com"
    evil = client.options("/meccano/plugins", headers={"Origin": "https://evil.example.com", **preflight})
    assert evil.status_code == 400 and "access-control-allow-origin" not in evil.headers
    got = client.get("/meccano/plugins", headers={"Origin": "https://console.example.com",
                                                  "X-Meccano-Token": SECRETS[2]})
    assert got.headers["access-control-allow-origin"] == "https://console.example.com"
    assert "access-control-allow-credentials" not in got.headers
    plain = _client().get("/meccano/plugins", headers={"Origin": "https://console.example.com",
                                                       "X-Meccano-Token": SECRETS[2]})
    assert "access-control-allow-origin" not in plain.headers  # no origins configured: no CORS


@pytest.mark.parametrize("value", ["*", "https://x.example.com/path", "console.example.com"])
def test_bad_cors_origin_is_a_clear_error(value):
    from meccano.errors import ConfigError
    from meccano.settings.config import load_settings

    with pytest.raises(ConfigError, match=r"MECCANO_WEB_CORS_ORIGINS: .* is not an origin"):
        load_settings(env={"MECCANO_WEB_CORS_ORIGINS": value})  # stops the load, not the first request


def test_no_secret_in_any_response(plugins_root, jwt, airflow_db):
    client = _client(jwt)
    bodies = [client.get(p).text for p in ("/meccano/", "/meccano/plugins", "/meccano/openapi.json",
                                           "/meccano/plugins/updatesByDevice:1.0/docs", "/meccano/reports/x",
                                           "/meccano/reports/updatesByDevice/latest/output.png")]
    bodies.append(_client().get("/meccano/plugins").text)
    for body in bodies:
        for secret in SECRETS:
            assert secret not in body


def test_openapi_documents_the_listing(plugins_root):
    schema = _client().get("/meccano/openapi.json").json()
    row = schema["components"]["schemas"]["PluginRow"]["properties"]
    assert set(ORIGINAL) | {"dag_id", "valid", "errors", "last_run", "next_run", "links"} <= set(row)


def test_listing_and_page_routes_use_the_configured_zone(plugins_root, jwt, airflow_db, monkeypatch):
    """The routers (web/routes/listing.py, page.py) take the zone from the app's context: every row names it
    and the page's header and schedule column show it."""
    monkeypatch.setenv("TZ", "Europe/Lisbon")
    client = _client(jwt)
    rows = client.get("/meccano/plugins").json()
    assert rows and {r["timezone"] for r in rows} == {"Europe/Lisbon"}
    page = client.get("/meccano/")
    assert page.status_code == 200
    assert "times in Europe/Lisbon" in page.text and "Schedule (Europe/Lisbon)" in page.text


def test_listing_marks_a_plugin_whose_interpreter_is_missing(plugins_root, jwt, airflow_db, tmp_path, monkeypatch):
    """deviceAvgTime is an R plugin: without Rscript on this host's PATH the listing says "needs R"."""
    bare = tmp_path / "bin-without-r"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))
    client = _client(jwt)
    rows = {r["folder"]: r for r in client.get("/meccano/plugins").json()}
    assert rows["deviceAvgTime:1.0"]["needs"] == "R"
    assert rows["deviceAvgTime:1.0"]["needs_detail"] == "Rscript not found on PATH; install r-base-core to run it"
    assert rows["updatesByDevice:1.0"]["needs"] is None and rows["updatesByDevice:1.0"]["needs_detail"] is None
    page = client.get("/meccano/").text
    row = page[page.index('<tr data-plugin="deviceAvgTime:1.0"'):]
    row = row[:row.index("</tr>")]
    assert '<span class="badge needs" data-needs="R"' in row and ">needs R</span>" in row
    assert page.count('data-needs="') == 1  # only the R plugin

    with_r = tmp_path / "bin-with-r"
    with_r.mkdir()
    (with_r / "Rscript").write_text("#!/bin/sh\nexit 0\n")
    (with_r / "Rscript").chmod(0o755)
    monkeypatch.setenv("PATH", str(with_r))
    rows = {r["folder"]: r for r in client.get("/meccano/plugins").json()}
    assert rows["deviceAvgTime:1.0"]["needs"] is None
    assert 'data-needs="' not in client.get("/meccano/").text
