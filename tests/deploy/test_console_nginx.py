"""The load balancer really routes the original console's port: docker/nginx/templates/meccano.conf.template
rendered as the nginx image renders it (upstreams and listen ports from the environment), run by a real nginx,
in front of the console API served by uvicorn as ``airflow api-server --proxy-headers`` runs it (forwarded
headers trusted from ``FORWARDED_ALLOW_IPS``, exactly the load balancer's address, as docker-compose.yaml sets).
The console's requests as it makes them: GET /plugins and a report's output.png, with the token, without it,
with a wrong one; nothing else is reachable on that port. The allow-list sees the real client behind nginx and
cannot be fooled with a client-chosen ``X-Forwarded-For``: clients use their own loopback source addresses
(Linux routes all of 127.0.0.0/8 to lo), nginx connects to the API server from 127.0.0.1 (``proxy_bind``).
HTTPS: docker/nginx/tls/meccano-tls.conf.template rendered next to it (as docker-compose.tls.yaml has the image
do), with a certificate made here, accepted by ``nginx -t`` and served."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.services._proc import free_ports, start, stop, wait_until
from tests.support.web import Reply, get_from, publish_sample_report

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "console-t0ken-value"  # plugins_root's MECCANO_WEB_CONSOLE_TOKEN
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
LB_ADDRESS = "127.0.0.1"  # nginx's source address towards the API server: the one address it trusts
ALLOWED, OTHER, NEIGHBOUR = "127.0.0.5", "127.0.0.6", "127.0.0.2"  # clients; only ALLOWED is allow-listed
TEMPLATES = {"meccano.conf.template": ROOT / "docker" / "nginx" / "templates" / "meccano.conf.template",
             "meccano-tls.conf.template": ROOT / "docker" / "nginx" / "tls" / "meccano-tls.conf.template"}


def _get(url: str, token: str | None = None) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url, headers={"X-Meccano-Token": token} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read(), resp.headers.get("content-type", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get("content-type", "")






def _render(name: str, values: dict[str, str]) -> str:
    """A template as the nginx image renders it: envsubst of the load balancer's variables only."""
    rendered = subprocess.run(["envsubst", " ".join(f"${{{k}}}" for k in values)], input=TEMPLATES[name].read_text(),
                              text=True, capture_output=True, check=True, env={**os.environ, **values}).stdout
    assert "${" not in rendered, f"a variable of {name} is not set by docker-compose's load balancer"
    return rendered


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (what MECCANO_TLS_DIR holds: fullchain.pem, privkey.pem)."""
    folder.mkdir()
    cert, key = folder / "fullchain.pem", folder / "privkey.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
    return cert, key


@dataclass
class Balanced:
    console: str        # the console port (plain)
    lb: str             # the UI/API port (plain)
    app: str            # the API server itself, not through nginx
    https: str          # the UI/API over TLS
    console_https: str  # the console's paths over TLS
    redirect: str       # plain HTTP that redirects to HTTPS
    tls: ssl.SSLContext  # trusts the test's certificate
    png: bytes


@pytest.fixture
def balanced(plugins_root, tmp_path):  # noqa: F811

    assert os.path.exists(NGINX), "nginx is missing: scripts/install-system-deps.sh test installs nginx-light"
    png = publish_sample_report(plugins_root)
    app_port, lb_port, console_port, https_port, console_https_port, redirect_port = free_ports(6)
    app_log = tmp_path / "uvicorn.log"
    # as docker-compose.yaml runs an API server: `airflow api-server --proxy-headers` (uvicorn with proxy headers,
    # trusting FORWARDED_ALLOW_IPS), the allow-list from MECCANO_WEB_CONSOLE_ALLOW
    env = {**os.environ, "FORWARDED_ALLOW_IPS": LB_ADDRESS, "MECCANO_WEB_CONSOLE_ALLOW": f"{ALLOWED}/32"}
    app = start([sys.executable, "-m", "uvicorn", "--factory", "tests.support.console_lb_app:app", "--proxy-headers",
                 "--host", "127.0.0.1", "--port", str(app_port)], app_log,
                env=env, cwd=ROOT)  # meccano: the installed package; tests.*: the working folder
    cert, key = _certificate(tmp_path / "tls")
    values = {"MECCANO_API_SERVER_1": f"127.0.0.1:{app_port}", "MECCANO_API_SERVER_2": f"127.0.0.1:{app_port}",
              "MECCANO_LB_PORT": f"127.0.0.1:{lb_port}", "MECCANO_CONSOLE_LB_PORT": f"127.0.0.1:{console_port}"}
    tls_values = {**values, "MECCANO_LB_HTTPS_PORT": f"127.0.0.1:{https_port}",
                  "MECCANO_CONSOLE_LB_HTTPS_PORT": f"127.0.0.1:{console_https_port}",
                  "MECCANO_LB_REDIRECT_PORT": f"127.0.0.1:{redirect_port}",
                  "MECCANO_HTTPS_PUBLIC_PORT": str(https_port),
                  "MECCANO_TLS_CERTIFICATE": str(cert), "MECCANO_TLS_CERTIFICATE_KEY": str(key)}
    rendered = _render("meccano.conf.template", values) + _render("meccano-tls.conf.template", tls_values)
    # proxy_bind: nginx's connections to the API server leave from LB_ADDRESS, distinct from every client's
    conf = (f"worker_processes 1;\nevents {{ worker_connections 64; }}\n"
            f"http {{\n  access_log {tmp_path / 'access.log'};\n  proxy_bind {LB_ADDRESS};\n{rendered}\n}}\n")
    (tmp_path / "nginx.conf").write_text(conf)
    argv = [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    checked = subprocess.run([*argv, "-t", "-g", f"pid {tmp_path / 'nginx.pid'}; error_log {tmp_path / 'error.log'};"],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and "test is successful" in checked.stderr, checked.stderr
    lb = start([*argv, "-g", f"daemon off; pid {tmp_path / 'nginx.pid'}; error_log {tmp_path / 'error.log'};"],
               tmp_path / "nginx.log")
    try:
        wait_until(lambda: _get(f"http://127.0.0.1:{app_port}/meccano-console/plugins")[0] == 401, 60,
                   "the console API", app_log)
        wait_until(lambda: _get(f"http://127.0.0.1:{console_port}/lb-health")[0] == 200, 30, "nginx",
                   tmp_path / "error.log")
        yield Balanced(console=f"http://127.0.0.1:{console_port}", lb=f"http://127.0.0.1:{lb_port}",
                       app=f"http://127.0.0.1:{app_port}", https=f"https://127.0.0.1:{https_port}",
                       console_https=f"https://127.0.0.1:{console_https_port}",
                       redirect=f"http://127.0.0.1:{redirect_port}",
                       tls=ssl.create_default_context(cafile=str(cert)), png=png)
    finally:
        stop(lb, grace=5, sig=signal.SIGQUIT)
        stop(app, grace=5, sig=signal.SIGTERM)


def test_console_port_serves_the_original_urls(balanced, plugins_root):  # noqa: F811
    console, png = balanced.console, balanced.png
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
    console = balanced.console
    for path in ("/plugins", "/plugins/updatesByDevice/output.png"):
        assert _get(f"{console}{path}")[0] == 401
        assert _get(f"{console}{path}", "wrong")[0] == 401


def test_nothing_else_on_the_console_port(balanced):
    console = balanced.console
    for path in ("/meccano/", "/meccano/plugins", "/meccano-console/plugins", "/api/v2/dags", "/",
                 "/plugins/updatesByDevice/data.csv", "/plugins/updatesByDevice:1.0/docs"):
        assert _get(f"{console}{path}", TOKEN)[0] == 404, path


def _seen(reply: Reply) -> tuple[int, str | None, str | None]:
    """Status, the client address the API server used (the allow-list's input), the X-Forwarded-For it got."""
    return reply.status, reply.headers.get("x-seen-client"), reply.headers.get("x-seen-forwarded-for")


def test_allow_list_sees_the_client_behind_the_load_balancer(balanced):
    """No token anywhere: an allow-listed client gets the listing through nginx, on both ports; a client that
    names the allow-listed address in its own X-Forwarded-For is still itself (nginx replaced the header)."""
    spoofed = {"X-Forwarded-For": ALLOWED}
    for url in (f"{balanced.console}/plugins", f"{balanced.lb}/meccano-console/plugins",
                f"{balanced.console}/plugins/updatesByDevice/output.png"):
        allowed = get_from(ALLOWED, url)
        assert _seen(allowed) == (200, ALLOWED, ALLOWED), url
        assert _seen(get_from(ALLOWED, url, spoofed)) == (200, ALLOWED, ALLOWED), url
        refused = get_from(OTHER, url, spoofed)
        # the header nginx sent is exactly the peer: appending ($proxy_add_x_forwarded_for) would keep ALLOWED
        assert _seen(refused) == (refused.status, OTHER, OTHER), url
        assert refused.status in (401, 403), url
        assert get_from(OTHER, url).status in (401, 403), url
    listed = json.loads(get_from(ALLOWED, f"{balanced.console}/plugins").body)
    assert {p["plugin"] for p in listed} == {"updatesByDevice:1.0", "deviceAvgTime:1.0"}


def test_the_api_server_trusts_forwarded_headers_from_the_load_balancer_only(balanced):
    """Straight to the API server (past nginx), X-Forwarded-For counts only on a connection from nginx's
    address: from any other address, a neighbour on the same loopback network included, the peer is the client."""
    url = f"{balanced.app}/meccano-console/plugins"
    for source in (OTHER, NEIGHBOUR):
        refused = get_from(source, url, {"X-Forwarded-For": ALLOWED})
        assert _seen(refused)[:2] == (refused.status, source) and refused.status in (401, 403), source
    # from the load balancer's own address the header is believed (what makes the first test pass)
    assert _seen(get_from(LB_ADDRESS, url, {"X-Forwarded-For": ALLOWED}))[:2] == (200, ALLOWED)
    assert _seen(get_from(LB_ADDRESS, url, {"X-Forwarded-For": OTHER}))[:2] == (401, OTHER)
    assert get_from(ALLOWED, url).status == 200  # the allow-listed client itself, straight


def test_https_on_the_load_balancer(balanced):
    """The TLS template with a self-signed certificate: TLS 1.2+ only, HSTS, the console API through it with the
    token and through the allow-list (X-Forwarded-For set there too), and plain HTTP redirected to HTTPS."""
    reply = get_from(OTHER, f"{balanced.https}/meccano-console/plugins", {"X-Meccano-Token": TOKEN}, balanced.tls)
    assert reply.status == 200 and reply.tls_version in ("TLSv1.2", "TLSv1.3"), (reply.status, reply.tls_version)
    assert reply.headers["Strict-Transport-Security"].startswith("max-age=")
    assert {p["plugin"] for p in json.loads(reply.body)} == {"updatesByDevice:1.0", "deviceAvgTime:1.0"}
    console = f"{balanced.console_https}/plugins"
    assert _seen(get_from(ALLOWED, console, context=balanced.tls)) == (200, ALLOWED, ALLOWED)
    spoofed = get_from(OTHER, console, {"X-Forwarded-For": ALLOWED}, balanced.tls)
    assert _seen(spoofed) == (spoofed.status, OTHER, OTHER) and spoofed.status in (401, 403)
    image = get_from(OTHER, f"{balanced.console_https}/plugins/updatesByDevice/output.png", {"X-Meccano-Token": TOKEN},
                  balanced.tls)
    assert (image.status, image.body) == (200, balanced.png)
    assert get_from(OTHER, f"{balanced.console_https}/meccano/plugins", {"X-Meccano-Token": TOKEN},
                 balanced.tls).status == 404
    moved = get_from(OTHER, f"{balanced.redirect}/meccano/plugins?all=1")
    https_port = urlsplit(balanced.https).port
    assert (moved.status, moved.headers["Location"]) == (301, f"https://127.0.0.1:{https_port}/meccano/plugins?all=1")
