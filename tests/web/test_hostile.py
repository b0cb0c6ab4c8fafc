"""The web listing and page over a plugins folder holding every hostile kind (tests/support/hostile.py).

Each request runs under an alarm: a read that blocks (a named pipe) fails the test instead of
hanging the suite.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from meccano.contract.manifest import invalid_dag_id
from tests.support.hostile import EXPECTED, OUTSIDE_SECRET, VALID, build_tree
from tests.support.web import admin_token, web_client


@pytest.fixture(scope="module")
def jwt() -> str:
    return admin_token()


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = build_tree(tmp_path)
    monkeypatch.setenv("MECCANO_PLUGINS_DIR", str(root))
    monkeypatch.setenv("MECCANO_REPORTS_DIR", str(tmp_path / "reports"))
    return root


@pytest.fixture
def deadline() -> Iterator[None]:
    def expired(*_: object) -> None:
        raise TimeoutError("the web view blocked on a plugin folder")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_listing_shows_every_folder_once_and_names_each_problem(hostile, jwt, airflow_db, deadline):
    response = web_client(jwt).get("/meccano/plugins")
    assert response.status_code == 200
    rows = response.json()
    folders = [r["folder"] for r in rows]
    assert len(folders) == len(set(folders)) == len(VALID) + len(EXPECTED)
    by_folder = {r["folder"]: r for r in rows}
    for name in VALID:
        assert by_folder[f"{name}:1.0"]["valid"] is True and by_folder[f"{name}:1.0"]["errors"] == []
    for name, (field_name, reason) in EXPECTED.items():
        row = by_folder[name]
        assert row["valid"] is False and row["dag_id"] == invalid_dag_id(hostile / name)
        assert any(e.startswith(f"{field_name}: ") and reason in e for e in row["errors"]), row["errors"]
    assert len(response.content) < 200_000  # a 50 MB plugin.json is not echoed
    description = by_folder["longDescription:1.0"]["description"]  # 5,000 characters as written: cut
    assert description.endswith("...(cut)") and len(description) < 2100
    assert by_folder["docsFifo:1.0"]["links"]["docs"] is None  # a pipe is no docs page


def test_page_and_docs_stay_up(hostile, jwt, airflow_db, deadline):
    client = web_client(jwt)
    page = client.get("/meccano/")
    assert page.status_code == 200
    assert "good:1.0" in page.text and "fifo:1.0" in page.text and "named pipe" in page.text
    assert client.get("/meccano/plugins/docsFifo:1.0/docs").status_code == 404
    for path in ("/meccano/plugins/linkedOut:1.0/docs", "/meccano/plugins/linkedOut:1.0/assets/index.html"):
        response = client.get(path)
        assert response.status_code == 404 and OUTSIDE_SECRET not in response.text
    assert OUTSIDE_SECRET not in page.text


def test_folder_name_that_is_not_utf8_is_listed(hostile, jwt, airflow_db, deadline):
    import os

    os.mkdir(os.path.join(os.fsencode(hostile), b"latin\xe9:1.0"))
    response = web_client(jwt).get("/meccano/plugins")
    assert response.status_code == 200
    row = {r["folder"]: r for r in response.json()}["latin\ufffd:1.0"]
    assert row["valid"] is False and row["errors"][0].startswith("folder: folder name 'latin\ufffd:1.0'")
    assert web_client(jwt).get("/meccano/").status_code == 200
