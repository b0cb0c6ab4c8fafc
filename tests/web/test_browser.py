"""A real browser on the real thing: Airflow's API server with the Meccano plugin on
127.0.0.1, SimpleAuthManager login, headless Chromium (Debian's) driven by Playwright."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from meccano.contract.manifest import load_plugin
from meccano.plugins.discovery import discover
from meccano.reports import charts
from meccano.reports.store import ReportStore
from tests.services._proc import free_port, start, stop, wait_until
from tests.support.web import CHROMIUM, CHROMIUM_ARGS, api_server_env

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "meccano-browser-test"
CONSOLE_TOKEN = "browser-console-token-42"


@dataclass
class ApiServer:
    url: str
    proc: subprocess.Popen
    log: Path
    plugins: Path
    console_origin: str = ""
    reports: list[str] = field(default_factory=list)


def _plugins_copy(target: Path) -> Path:
    """The shipped plugins plus one invalid plugin, so the page shows both kinds."""
    shutil.copytree(ROOT / "meccano_plugins", target, ignore=shutil.ignore_patterns("__pycache__"))
    bad = target / "broken:1.0"
    bad.mkdir()
    (bad / "plugin.json").write_text(json.dumps({"plugin": "broken:1.0", "engine": "cobol", "enabled": True,
                                                 "schedule": "@daily", "description": "broken on purpose",
                                                 "type": "report", "executionContext": "master"}))
    return target


def _airflow_env(home: Path, reports: Path, plugins: Path) -> dict[str, str]:
    env = api_server_env({k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MECCANO_"))}, home,
                         "browser-test-jwt-secret-" + "x" * 48)
    (home / "passwords.json").write_text(json.dumps({"admin": PASSWORD}))
    env.update({
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "MECCANO_REPORTS_DIR": str(reports),
        "MECCANO_PLUGINS_DIR": str(plugins),
    })
    return env


def _seed_reports(reports: Path, plugins: Path) -> list[str]:
    """A published chart for every report plugin (the DAG runs are tested elsewhere)."""
    store = ReportStore("file://" + str(reports))
    names = []
    for load in discover(plugins).active:
        manifest = load.manifest
        if manifest.type != "report":
            continue
        out = reports.parent / "out" / manifest.name
        bars = charts.fold_top_n({f"dev-{i:03d}": (i * 37) % 101 for i in range(60)}, top_n=15, others="mean")
        charts.bar_chart(out / "output.png", bars, title=f"{manifest.name} (browser test)", value_label="value",
                         category_label="device")
        charts.write_csv(out / "data.csv", ["device", "value"], [(b.label, b.value) for b in bars])
        store.publish(load_plugin(manifest.folder).manifest, out)
        names.append(manifest.name)
    return names


@pytest.fixture(scope="module")
def api_server(tmp_path_factory) -> Iterator[ApiServer]:
    home = tmp_path_factory.mktemp("airflow-home")
    plugins = _plugins_copy(home / "meccano_plugins")
    env = _airflow_env(home, home / "reports", plugins)
    console_origin = f"http://127.0.0.1:{free_port()}"  # where the web console's page comes from
    env.update({"MECCANO_WEB_CONSOLE_TOKEN": CONSOLE_TOKEN, "MECCANO_WEB_CORS_ORIGINS": console_origin})
    airflow = str(Path(sys.executable).parent / "airflow")
    migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    port = free_port()
    log = home / "api-server.log"
    proc = start([airflow, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], log,
                 env={**env, "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}"})
    server = ApiServer(f"http://127.0.0.1:{port}", proc, log, plugins, console_origin)
    try:
        import urllib.request

        wait_until(lambda: urllib.request.urlopen(f"{server.url}/api/v2/monitor/health", timeout=2).status == 200,
                   120, "airflow api-server", log)
        server.reports = _seed_reports(home / "reports", plugins)
        yield server
    finally:
        stop(proc, grace=15, sig=signal.SIGTERM)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _login(page, url: str) -> None:
    page.goto(f"{url}/")
    page.wait_for_selector("input[name=username]", timeout=60_000)
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.locator("button[type=submit]").click()
    page.wait_for_function("() => document.cookie.includes('_token') || !location.pathname.startsWith('/auth')",
                           timeout=60_000)


def _check_meccano_page(frame, expected_folders: set[str], reports: list[str]) -> None:
    frame.wait_for_selector("table#plugins tbody tr", timeout=60_000)
    rows = set(frame.eval_on_selector_all("tr[data-plugin]", "els => els.map(e => e.dataset.plugin)"))
    assert rows == expected_folders
    frame.wait_for_function(
        "() => [...document.images].filter(i => i.classList.contains('report')).every(i => i.complete)",
        timeout=60_000)
    images = frame.eval_on_selector_all(
        "img.report", "els => els.map(e => [e.closest('[data-report]').dataset.report, e.naturalWidth])")
    assert sorted(name for name, _ in images) == sorted(reports)
    assert all(width > 0 for _, width in images), images


def test_page_after_login(api_server, browser, tmp_path):
    expected = {p.folder.name for p in discover(api_server.plugins).all}
    assert "broken:1.0" in expected
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    # Without a login, the page is refused.
    assert page.goto(f"{api_server.url}/meccano/").status == 401
    _login(page, api_server.url)
    response = page.goto(f"{api_server.url}/meccano/")
    assert response.status == 200
    _check_meccano_page(page, expected, api_server.reports)
    assert page.get_attribute('tr[data-plugin="broken:1.0"]', "data-valid") == "false"
    assert "unknown engine 'cobol'" in page.inner_text('[data-invalid="broken:1.0"]')
    page.screenshot(path=str(tmp_path / "meccano-page.png"), full_page=True)
    print(f"screenshot: {tmp_path / 'meccano-page.png'}")
    # The page loads nothing from another origin.
    external = page.eval_on_selector_all("[src],[href]", "els => els.map(e => e.src || e.href)"
                                         ".filter(u => u && !u.startsWith(location.origin))")
    assert external == []
    context.close()


def test_page_through_airflow_navigation(api_server, browser, tmp_path):
    expected = {p.folder.name for p in discover(api_server.plugins).all}
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    _login(page, api_server.url)
    page.goto(f"{api_server.url}/")
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="Meccano plugins").click()
    page.wait_for_url("**/plugin/meccano", timeout=60_000)
    frame_el = page.wait_for_selector("iframe[src*='/meccano/']", timeout=60_000)
    _check_meccano_page(frame_el.content_frame(), expected, api_server.reports)
    page.screenshot(path=str(tmp_path / "airflow-nav.png"))
    print(f"screenshot: {tmp_path / 'airflow-nav.png'}")
    context.close()


@pytest.fixture
def console_page_server(api_server, tmp_path):
    """A plain web server on the console's origin (the console is a static page calling the API)."""
    (tmp_path / "console.html").write_text("<!doctype html><title>console</title><p>Meccano console</p>")
    port = int(api_server.console_origin.rsplit(":", 1)[1])
    log = tmp_path / "console-http.log"
    proc = start([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory",
                  str(tmp_path)], log)
    try:
        import urllib.request

        wait_until(lambda: urllib.request.urlopen(f"{api_server.console_origin}/console.html", timeout=2).status
                   == 200, 30, "console page server", log)
        yield f"{api_server.console_origin}/console.html"
    finally:
        stop(proc, grace=5, sig=signal.SIGTERM)


CONSOLE_JS = """async ([api, token]) => {
  const get = async (path, t) => {
    const r = await fetch(api + path, {headers: t ? {"X-Meccano-Token": t} : {}});
    return [r.status, r.headers.get("content-type"), r.ok ? await r.blob() : null];
  };
  const [okStatus, , listBlob] = await get("/plugins", token);
  const listing = JSON.parse(await listBlob.text());
  const [none] = await get("/plugins", null);
  const [wrong] = await get("/plugins", "not-the-token");
  const report = listing.find(p => p.type === "report");
  const name = report.plugin.split(":")[0];
  const [imgStatus, imgType, png] = await get("/plugins/" + name + "/output.png", token);
  const [imgNone] = await get("/plugins/" + name + "/output.png", null);
  const img = document.createElement("img");
  img.src = URL.createObjectURL(png);
  document.body.appendChild(img);
  await img.decode();
  return {okStatus, plugins: listing.map(p => p.plugin), none, wrong, imgStatus, imgType, imgNone,
          width: img.naturalWidth};
}"""


def test_web_console_reads_listing_and_report_image_with_its_token(api_server, browser, console_page_server):
    """The console, in a browser on its own origin, calls the console API with its one credential."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(console_page_server)
    result = page.evaluate(CONSOLE_JS, [f"{api_server.url}/meccano-console", CONSOLE_TOKEN])
    loaded = sorted(p.manifest.plugin for p in discover(api_server.plugins).active)
    assert result["okStatus"] == 200 and sorted(result["plugins"]) == loaded  # loaded plugins only
    assert "broken:1.0" not in result["plugins"]
    assert result["none"] == 401 and result["wrong"] == 401 and result["imgNone"] == 401
    assert result["imgStatus"] == 200 and result["imgType"] == "image/png" and result["width"] > 0
    # the token opens nothing else: not the web view's page
    other = page.evaluate("""async ([url, token]) => {
        try { return (await fetch(url, {headers: {"X-Meccano-Token": token}})).status; }
        catch (e) { return "blocked"; } }""", [f"{api_server.url}/meccano/", CONSOLE_TOKEN])
    assert other in (401, "blocked")
    context.close()
