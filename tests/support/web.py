"""The web view as the tests reach it: an Airflow login token, and a client of the app mounted
under ``/meccano`` as ``meccano.web.airflow_plugin`` mounts it in Airflow's API server."""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from meccano.web.settings import WebSettings


def admin_token(username: str = "admin") -> str:
    """A JWT from Airflow's auth manager (as the API server builds it) for an admin user: what the UI's
    ``_token`` cookie or an API client's bearer header carries. The tests' one use of Airflow's
    auth-manager modules (internal; tests/web/test_airflow_internal_contract.py pins them)."""
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return init_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role="admin"))


def web_client(jwt: str | None = None, settings: WebSettings | None = None) -> TestClient:
    """A client of the web view's app under ``/meccano`` (``settings``: the app's own when None);
    logged in with ``jwt`` when given."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from meccano.web.app import create_app

    outer = FastAPI()
    outer.mount("/meccano", create_app(settings))
    client = TestClient(outer)
    if jwt:
        client.headers["Authorization"] = f"Bearer {jwt}"
    return client


def api_server_env(base: dict[str, str], home: Path, jwt_secret: str) -> dict[str, str]:
    """``base`` plus what a standalone Airflow API server of the tests needs: its own home and SQLite metadata
    database, no examples, this checkout's dags/ and plugins/ folders, a JWT secret of the test's own."""
    root = Path(__file__).resolve().parents[2]
    return {**base,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret}


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    tls_version: str | None = None


def get_from(source: str, url: str, headers: dict[str, str] | None = None,
          context: ssl.SSLContext | None = None) -> Reply:
    """GET ``url`` from the loopback address ``source`` (the client's own address, as nginx sees it)."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=30, source_address=(source, 0), context=context)
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30, source_address=(source, 0))
    try:
        conn.request("GET", target, headers=headers or {})
        resp = conn.getresponse()
        version = conn.sock.version() if isinstance(conn.sock, ssl.SSLSocket) else None
        return Reply(resp.status, resp.headers, resp.read(), version)
    finally:
        conn.close()


CHROMIUM = "/usr/bin/chromium"


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def publish_sample_report(plugins: Path) -> bytes:
    """Publish a small chart and its numbers as ``updatesByDevice``'s report; returns the chart's bytes."""
    from meccano.contract.manifest import load_plugin
    from meccano.reports import charts
    from meccano.reports.store import ReportStore
    from meccano.settings.config import load_settings

    settings = load_settings()
    out = plugins.parent / "out"
    charts.bar_chart(out / "output.png", charts.fold_top_n({"dev1": 3, "dev2": 5}, top_n=5), title="t",
                     value_label="v", category_label="device")
    (out / "data.csv").write_text("device,updates\ndev1,3\n")
    ReportStore.from_settings(settings).publish(load_plugin(plugins / "updatesByDevice:1.0").manifest, out)
    return (out / "output.png").read_bytes()


OUTSIDE = "TOP-SECRET-OUTSIDE-FILE"


SECRETS = ("sup3r-mysql-pw", "aws-s3cr3t-key", "console-t0ken-value", "conn-pa55word")


FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"


def airflow_cli(args: list[str], env: dict[str, str], cwd: Path) -> None:
    """``airflow ARGS`` of this venv with ``env``; fails the test with its output when it fails."""
    import subprocess
    import sys

    airflow = str(Path(sys.executable).parent / "airflow")
    done = subprocess.run([airflow, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"airflow {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@contextmanager
def fab_api_server(env: dict[str, str], home: Path, admin: tuple[str, str], wait: float = 180) -> Iterator[str]:
    """A real ``airflow api-server`` with the FAB auth manager on a free port of 127.0.0.1 (``env`` names it): the
    metadata database migrated, the DAGs serialized (so their per-DAG FAB resources exist), ``admin`` an Admin
    user. Yields its URL once its health check answers; stopped afterwards."""
    import signal
    import sys
    import urllib.request

    from tests.services._proc import free_port, start, stop, wait_until

    airflow_cli(["db", "migrate"], env, home)
    airflow_cli(["dags", "reserialize"], env, home)  # the DAGs and their per-DAG FAB resources (DAG:<id>)
    airflow_cli(["users", "create", "-u", admin[0], "-p", admin[1], "-r", "Admin", "-e", f"{admin[0]}@meccano.test",
                 "-f", "Ad", "-l", "Min"], env, home)
    port = free_port()
    env["AIRFLOW__API__BASE_URL"] = url = f"http://127.0.0.1:{port}"
    log = home / "api-server.log"
    proc = start([str(Path(sys.executable).parent / "airflow"), "api-server", "--host", "127.0.0.1", "--port",
                  str(port), "--workers", "1"], log, env=env, cwd=home)
    try:
        wait_until(lambda: urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2).status == 200,
                   wait, "airflow api-server (FAB)", log)
        yield url
    finally:
        stop(proc, grace=15, sig=signal.SIGTERM)
