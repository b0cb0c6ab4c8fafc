"""The load balancer really routes the original console's port: docker/nginx/templates/meccano.conf.template
rendered as the nginx image renders it (upstreams and listen ports from the environment), run by a real nginx,
in front of the console API served by uvicorn.
The console's requests as it makes them: GET /plugins and a report's output.png, with the token, without it,
with a wrong one; nothing else is reachable on that port."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.services._proc import free_port, start, stop, wait_until
from tests.test_web_api import plugins_root  # noqa: F401 - 2 reports, a shadowed version, 2 invalid

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "console-t0ken-value"  # plugins_root's MECCANO_WEB_CONSOLE_TOKEN
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _get(url: str, token: str | None = None) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url, headers={"X-Meccano-Token": token} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read(), resp.headers.get("content-type", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get("content-type", "")


@pytest.fixture
def balanced(plugins_root, tmp_path):  # noqa: F811
    from tests.test_console import _publish

    assert os.path.exists(NGINX), "nginx is missing: scripts/install-system-deps.sh test installs nginx-light"
    png = _publish(plugins_root)
    app_port, lb_port, console_port = free_port(), free_port(), free_port()
    app_log = tmp_path / "uvicorn.log"
    app = start([sys.executable, "-m", "uvicorn", "--factory", "tests.console_lb_app:app", "--host", "127.0.0.1",
                 "--port", str(app_port)], app_log,
                env=dict(os.environ), cwd=ROOT)  # meccano: the installed package; tests.*: the working folder
    # the template as the nginx image renders it (envsubst of the load balancer's variables), in an http block
    template = (ROOT / "docker" / "nginx" / "templates" / "meccano.conf.template").read_text()
    values = {"MECCANO_API_SERVER_1": f"127.0.0.1:{app_port}", "MECCANO_API_SERVER_2": f"127.0.0.1:{app_port}",
              "MECCANO_LB_PORT": f"127.0.0.1:{lb_port}", "MECCANO_CONSOLE_LB_PORT": f"127.0.0.1:{console_port}"}
    rendered = subprocess.run(["envsubst", " ".join(f"${{{k}}}" for k in values)], input=template, text=True,
                              capture_output=True, check=True, env={**os.environ, **values}).stdout
    assert "${" not in rendered, "a variable of the template is not set by docker-compose.yaml's load balancer"
    conf = (f"worker_processes 1;\nevents {{ worker_connections 64; }}\n"
            f"http {{\n  access_log {tmp_path / 'access.log'};\n{rendered}\n}}\n")
    (tmp_path / "nginx.conf").write_text(conf)
    lb_log = tmp_path / "nginx.log"
    lb = start([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g",
                f"daemon off; pid {tmp_path / 'nginx.pid'}; error_log {tmp_path / 'error.log'};"], lb_log)
    try:
        wait_until(lambda: _get(f"http://127.0.0.1:{app_port}/meccano-console/plugins")[0] == 401, 60,
                   "the console API", app_log)
        wait_until(lambda: _get(f"http://127.0.0.1:{console_port}/lb-health")[0] == 200, 30, "nginx",
                   tmp_path / "error.log")
        yield f"http://127.0.0.1:{console_port}", png
    finally:
        stop(lb, grace=5, sig=signal.SIGQUIT)
        stop(app, grace=5, sig=signal.SIGTERM)


def test_console_port_serves_the_original_urls(balanced, plugins_root):  # noqa: F811
    console, png = balanced
    status, body, kind = _get(f"{console}/plugins", TOKEN)
    assert status == 200 and kind.startswith("application/json")
    listed = {p["plugin"]: p for p in json.loads(body)}
    assert set(listed) == {"updatesByDevice:1.0", "deviceAvgTime:1.0"}
    assert listed["updatesByDevice:1.0"] == json.loads((plugins_root / "updatesByDevice:1.0" / "plugin.json")
                                                         .read_text())
    everything = json.loads(_get(f"{console}/plugins?all=1", TOKEN)[1])  # the query string passes through
    assert {p["status"] for p in everything} == {"loaded", "shadowed", "invalid"}
    for path in ("/plugins/updatesByDevice/output.png", "/plugins/updatesByDevice:1.0/assets/output.png"):
        status, data, kind = _get(f"{console}{path}", TOKEN)
        assert (status, kind, data) == (200, "image/png", png), path


def test_console_port_without_or_with_wrong_token(balanced):
    console, _ = balanced
    for path in ("/plugins", "/plugins/updatesByDevice/output.png"):
        assert _get(f"{console}{path}")[0] == 401
        assert _get(f"{console}{path}", "wrong")[0] == 401


def test_nothing_else_on_the_console_port(balanced):
    console, _ = balanced
    for path in ("/meccano/", "/meccano/plugins", "/meccano-console/plugins", "/api/v2/dags", "/",
                 "/plugins/updatesByDevice/data.csv", "/plugins/updatesByDevice:1.0/docs"):
        assert _get(f"{console}{path}", TOKEN)[0] == 404, path
