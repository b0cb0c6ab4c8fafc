"""The web view shows a logged-in user only what Airflow's auth manager lets them read, DAG by DAG: a real API
server with the FAB auth manager, the web view mounted by its plugin entry point, a FAB user whose role may read
one DAG (``can_read`` on ``DAG:updatesByDevice``) and nothing else. The listing, the page, the report history,
a report's files (``data.csv``) and the plugin's docs all follow ``is_authorized_dag``; the admin sees every
plugin; the console's own credential (its token) is no Airflow user and sees what the console is configured
for."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.web import FAB_AUTH_MANAGER, api_server_env, fab_api_server

ROOT = Path(__file__).resolve().parents[2]
ADMIN = ("admin", "admin-pass-for-the-permission-test")
READER = ("one-dag-reader", "one-dag-reader-pass-77")
CONSOLE_TOKEN = "console-token-for-the-permission-test"
MINE, OTHER = "updatesByDevice", "fleetStatusHistory"  # two report plugins: the reader may read the first only
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")


@dataclass
class Server:
    url: str

    def get(self, path: str, token: str | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        sent = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
        request = urllib.request.Request(self.url + path, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def call(self, method: str, path: str, body: object, token: str | None = None) -> tuple[int, object]:
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def token(self, user: tuple[str, str]) -> str:
        status, body = self.call("POST", "/auth/token", {"username": user[0], "password": user[1]})
        assert status == 201, body
        assert isinstance(body, dict)
        return str(body["access_token"])


def _publish_reports(reports: Path) -> None:
    """A report (chart and data.csv) of each of the two plugins, as a run publishes it."""
    from meccano.plugins.discovery import discover
    from meccano.reports.store import ReportStore

    store = ReportStore(str(reports))
    manifests = {load.manifest.name: load.manifest for load in discover(ROOT / "meccano_plugins").active
                 if load.manifest}
    for name in (MINE, OTHER):
        out = reports.parent / f"out-{name}"
        out.mkdir()
        (out / "output.png").write_bytes(PNG)
        (out / "data.csv").write_text(f"device,count\n{name}-device,3\n")
        store.publish(manifests[name], out)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("airflow-fab-web")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "MECCANO_", "EXPORT_"))}
    env = api_server_env(clean, home, "dag-permission-test-jwt-secret-" + "z" * 48)
    env.update({
        "AIRFLOW__CORE__AUTH_MANAGER": FAB_AUTH_MANAGER,
        "MECCANO_PLUGINS_DIR": str(ROOT / "meccano_plugins"),
        "MECCANO_REPORTS_DIR": str(home / "reports"),
        "MECCANO_IOTDB_SQLITE": str(home / "iotdb.sqlite"),
        "MECCANO_WEB_CONSOLE_TOKEN": CONSOLE_TOKEN,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "include"), os.environ.get("PYTHONPATH", "")) if p),
    })
    _publish_reports(home / "reports")
    with fab_api_server(env, home, ADMIN) as url:
        server = Server(url)
        admin = server.token(ADMIN)
        role = {"name": "ReadsOneDag", "actions": [{"action": {"name": "can_read"},
                                                     "resource": {"name": f"DAG:{MINE}"}}]}
        assert server.call("POST", "/auth/fab/v1/roles", role, admin)[0] == 200
        user = {"username": READER[0], "password": READER[1], "email": "reader@meccano.test",
                "first_name": "One", "last_name": "Dag", "roles": [{"name": "ReadsOneDag"}]}
        assert server.call("POST", "/auth/fab/v1/users", user, admin)[0] == 200
        yield server


def _dag_ids(server: Server, token: str | None = None, headers: dict[str, str] | None = None) -> list[str]:
    status, body = server.get("/meccano/plugins", token, headers)
    assert status == 200, body[:500]
    return [row["dag_id"] for row in json.loads(body)]


def test_a_user_who_may_read_one_dag_sees_that_plugin_only(server: Server):
    reader = server.token(READER)
    assert server.get(f"/api/v2/dags/{OTHER}", reader)[0] == 403  # Airflow's own answer for the same user
    assert server.get(f"/api/v2/dags/{MINE}", reader)[0] == 200
    assert _dag_ids(server, reader) == [MINE]
    status, page = server.get("/meccano/", reader)
    assert status == 200 and MINE.encode() in page and OTHER.encode() not in page
    assert server.get(f"/meccano/reports/{OTHER}", reader)[0] == 404
    assert server.get(f"/meccano/reports/{OTHER}/latest/data.csv", reader)[0] == 404
    assert server.get(f"/meccano/reports/{OTHER}/latest/output.png", reader)[0] == 404
    assert server.get(f"/meccano/plugins/{OTHER}:1.0/docs", reader)[0] == 404
    status, history = server.get(f"/meccano/reports/{MINE}", reader)
    assert status == 200 and len(json.loads(history)) == 1
    assert server.get(f"/meccano/reports/{MINE}/latest/data.csv", reader) == (
        200, f"device,count\n{MINE}-device,3\n".encode())
    assert server.get(f"/meccano/plugins/{MINE}:1.0/docs", reader)[0] == 200


def test_the_admin_sees_every_plugin_and_the_console_token_what_the_console_lists(server: Server):
    admin = server.token(ADMIN)
    everything = _dag_ids(server, admin)
    shipped = {path.name.partition(":")[0] for path in (ROOT / "meccano_plugins").iterdir() if ":" in path.name}
    assert set(everything) == shipped and {MINE, OTHER} <= set(everything)
    assert server.get(f"/meccano/reports/{OTHER}/latest/data.csv", admin)[0] == 200
    assert _dag_ids(server, headers={"X-Meccano-Token": CONSOLE_TOKEN}) == everything
    assert server.get("/meccano/plugins")[0] == 401
