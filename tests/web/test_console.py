"""The original web console's API (include/meccano/web/console.py): GET /plugins with the loaded
plugins' plugin.json, each report's current output.png, one credential for exactly these."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from meccano.settings.config import load_settings
from meccano.web.settings import web_settings
from tests.support.web import publish_sample_report

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "console-t0ken-value"  # set by plugins_root as MECCANO_WEB_CONSOLE_TOKEN
LOADED = {"updatesByDevice:1.0", "deviceAvgTime:1.0"}


def _client(prefix: str = "", **web) -> TestClient:
    from meccano.web.app import create_app
    from meccano.web.console import create_console_app

    settings = web_settings(load_settings())
    if web:
        settings = settings.model_copy(update=web)
    outer = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)  # only the mounted apps answer
    outer.mount("/meccano", create_app(settings))
    outer.mount(prefix or "/", create_console_app(settings))
    return TestClient(outer)




def test_loaded_plugins_with_their_plugin_json(plugins_root):  # noqa: F811
    response = _client().get("/plugins", headers={"X-Meccano-Token": TOKEN})
    assert response.status_code == 200
    body = response.json()
    expected = [json.loads((plugins_root / f / "plugin.json").read_text()) for f in sorted(LOADED)]
    assert sorted(body, key=lambda p: p["plugin"]) == sorted(expected, key=lambda p: p["plugin"])


def test_all_adds_shadowed_and_invalid_with_status(plugins_root):  # noqa: F811
    rows = _client().get("/plugins?all=1", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    status = {r["folder"]: r["status"] for r in rows}
    assert status == {"updatesByDevice:1.0": "loaded", "deviceAvgTime:1.0": "loaded",
                      "updatesByDevice:0.9": "shadowed", "broken:1.0": "invalid", "garbled:1.0": "invalid"}
    broken = next(r for r in rows if r["folder"] == "broken:1.0")
    assert broken["engine"] == "cobol" and any("unknown engine" in e for e in broken["errors"])
    assert next(r for r in rows if r["folder"] == "updatesByDevice:0.9")["shadowedBy"] == "updatesByDevice:1.0"


def test_all_follows_the_one_boolean_rule_and_names_a_bad_value(plugins_root):  # noqa: F811
    client, auth = _client(), {"X-Meccano-Token": TOKEN}

    def folders(query: str) -> int:
        return len(client.get(f"/plugins{query}", headers=auth).json())

    loaded, everything = folders(""), folders("?all=1")
    assert everything > loaded
    assert [folders(q) for q in ("?all=on", "?all=TRUE", "?all=yes")] == [everything] * 3
    assert [folders(q) for q in ("?all=", "?all=0", "?all=off", "?all=false")] == [loaded] * 4
    response = client.get("/plugins?all=maybe", headers=auth)
    assert response.status_code == 400
    assert "query parameter all" in response.json()["detail"] and "'maybe'" in response.json()["detail"]


@pytest.mark.parametrize("headers", [{}, {"X-Meccano-Token": "wrong"}, {"Authorization": "Bearer wrong"},
                                     {"X-Meccano-Token": TOKEN + "x"}])
def test_without_or_with_wrong_credential_refused(plugins_root, headers):  # noqa: F811
    publish_sample_report(plugins_root)
    client = _client()
    for path in ("/plugins", "/plugins?all=1", "/plugins/updatesByDevice/output.png"):
        response = client.get(path, headers=headers)
        assert response.status_code == 401, path
        assert TOKEN not in response.text


def test_report_image_as_the_console_fetches_it(plugins_root):  # noqa: F811
    png = publish_sample_report(plugins_root)
    client = _client()
    for path in ("/plugins/updatesByDevice/output.png", "/plugins/updatesByDevice:1.0/output.png",
                 "/plugins/updatesByDevice:1.0/assets/output.png"):
        response = client.get(path, headers={"X-Meccano-Token": TOKEN})
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "image/png" and response.content == png
    for path in ("/plugins/deviceAvgTime/output.png",  # loaded, nothing published yet
                 "/plugins/updatesByDevice:0.9/output.png",  # shadowed: not loaded
                 "/plugins/broken/output.png", "/plugins/nothing/output.png", "/plugins/..%2F..%2Fetc/output.png"):
        assert client.get(path, headers={"X-Meccano-Token": TOKEN}).status_code == 404, path


def test_the_token_opens_nothing_else(plugins_root):  # noqa: F811
    publish_sample_report(plugins_root)
    client = _client()
    headers = {"X-Meccano-Token": TOKEN}
    for path in ("/meccano/", "/meccano/plugins/updatesByDevice:1.0/docs", "/meccano/reports/updatesByDevice",
                 "/meccano/reports/updatesByDevice/latest/data.csv"):
        assert client.get(path, headers=headers).status_code == 401, path
    for path in ("/openapi.json", "/docs", "/plugins/updatesByDevice:1.0/assets/index.html",
                 "/plugins/updatesByDevice/data.csv"):
        assert client.get(path, headers=headers).status_code == 404, path


def test_closed_when_no_credential_is_configured(plugins_root, monkeypatch):  # noqa: F811
    monkeypatch.delenv("MECCANO_WEB_CONSOLE_TOKEN")
    response = _client().get("/plugins", headers={"X-Meccano-Token": "anything"})
    assert response.status_code == 401 and "MECCANO_WEB_CONSOLE_TOKEN" in response.json()["detail"]


def test_cors_for_the_console_origin(plugins_root):  # noqa: F811
    client = _client(cors_origins=("http://console.example:3000",))
    pre = client.options("/plugins", headers={"Origin": "http://console.example:3000",
                                              "Access-Control-Request-Method": "GET",
                                              "Access-Control-Request-Headers": "x-meccano-token"})
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == "http://console.example:3000"
    got = client.get("/plugins", headers={"Origin": "http://console.example:3000", "X-Meccano-Token": TOKEN})
    assert got.headers["access-control-allow-origin"] == "http://console.example:3000"
    other = client.get("/plugins", headers={"Origin": "http://evil.example", "X-Meccano-Token": TOKEN})
    assert "access-control-allow-origin" not in other.headers


def test_load_balancer_routes_the_console_port_to_the_console_api():
    conf = (ROOT / "docker" / "nginx" / "templates" / "meccano.conf.template").read_text()
    console = conf[conf.index("listen ${MECCANO_CONSOLE_LB_PORT};"):]
    assert "rewrite ^ /meccano-console/plugins break;" in console
    assert "rewrite ^/plugins/(.*)$ /meccano-console/plugins/$1 break;" in console
    assert "location / { return 404; }" in console
    from meccano.contract.web_paths import CONSOLE_PREFIX

    assert CONSOLE_PREFIX == "/meccano-console"
