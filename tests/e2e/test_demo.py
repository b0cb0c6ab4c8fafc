"""The embedded demo, started by the README's own command (``make demo``), end to end.

Starts it on a free port with a fresh state folder, waits for Airflow's health, checks
that plugin DAGs succeed on the simulated fleet, that the web console's listing and a
report image answer, then stops it with Ctrl-C (SIGINT) and checks that nothing it
started is still running.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from meccano.cli.demo import group_members
from tests.services._proc import free_ports

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.demo
CONSOLE_TOKEN = "demo-console-token-for-tests"


def _get(url: str, token: str | None = None, timeout: float = 10,
         headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url, headers=headers or ({"Authorization": f"Bearer {token}"} if token else {}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read(), resp.headers.get("content-type", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), ""


def _token(base: str) -> str:
    req = urllib.request.Request(f"{base}/auth/token", data=json.dumps({"username": "admin", "password": "admin"})
                                 .encode(), headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())["access_token"]


def _poll(what: str, check, timeout: float):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (OSError, urllib.error.URLError, ValueError, KeyError) as exc:
            last = exc
        time.sleep(3)
    raise AssertionError(f"{what} not reached in {timeout:.0f}s (last: {last!r})")


def _processes_with(marker: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes() or marker.encode() in (proc / "cmdline").read_bytes():
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return found


def _pids_with(marker: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if marker.encode() in (proc / "environ").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _group_alive(pgid: int) -> bool:
    return bool(group_members(pgid))


def _assert_held_plugins_paused(base: str, token: str, banner: str) -> None:
    """Plugins the listing marks "needs ..." (interpreter missing here) are paused and were named at start-up."""
    status, body, _ = _get(f"{base}/meccano/plugins", token)
    assert status == 200
    for row in json.loads(body):
        if row["needs"]:
            assert row["paused"] is True, row["dag_id"]
            assert f"demo: plugin {row['folder']} needs {row['needs']} (" in banner, row["dag_id"]


def test_make_demo_runs_the_fleet_and_stops_cleanly(tmp_path: Path):
    port, console_port = free_ports(2)
    state = tmp_path / "demo-state"
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "demo.out", "wb")  # noqa: SIM115
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MECCANO_", "EXPORT_"))}
    env["MECCANO_WEB_CONSOLE_TOKEN"] = CONSOLE_TOKEN
    proc = subprocess.Popen(["make", "demo", f"DEMO_ARGS=--port {port} --state {state} --fresh --backfill-days 1 "
                                             f"--console-port {console_port}"],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        _poll("the demo's 'is up' banner", lambda: b"demo is up" in (tmp_path / "demo.out").read_bytes(), 400)
        banner = (tmp_path / "demo.out").read_text()
        assert f"http://127.0.0.1:{port}/" in banner and "admin / admin" in banner and "Ctrl-C" in banner
        assert "demo: step 1 of 3: " in banner and "demo: step 3 of 3: " in banner  # progress while starting
        assert "demo: backfill: 1 days ..." in banner  # the simulator's back-fill, relayed as it goes
        token = _poll("a login token", lambda: _token(base), 120)  # a loaded machine may answer slowly

        def succeeded() -> list[str]:
            done = []
            for dag_id in ("historyStatus", "deviceAlert", "fleetStatusHistory"):
                status, body, _ = _get(f"{base}/api/v2/dags/{dag_id}/dagRuns?state=success&limit=1", token)
                if status == 200 and json.loads(body)["total_entries"] > 0:
                    done.append(dag_id)
            return done if len(done) == 3 else []

        _poll("succeeded runs of historyStatus, deviceAlert and fleetStatusHistory", succeeded, 420)
        status, body, _ = _get(f"{base}/meccano/plugins", token)
        assert status == 200
        rows = {r["dag_id"]: r for r in json.loads(body)}
        assert rows["historyStatus"]["valid"] and rows["historyStatus"]["last_run"] is not None
        assert rows["forecastDay"]["enabled"] is False  # disabled-by-default plugins stay disabled

        def report_png() -> bytes | None:
            status, body, _ = _get(f"{base}/meccano/plugins", token)
            row = {r["dag_id"]: r for r in json.loads(body)}["fleetStatusHistory"]
            link = row["links"]["report"]
            if not link:
                return None
            url = link if link.startswith("http") else f"{base}{link}"
            status, data, _ = _get(url, token)
            return data if status == 200 and data[:8] == b"\x89PNG\r\n\x1a\n" else None

        assert _poll("a report image from the web view", report_png, 300)

        # The original web console, unchanged: GET http://<host>:<console port>/plugins with its token.
        console = f"http://127.0.0.1:{console_port}"
        assert f"{console}/plugins" in banner
        status, body, _ = _get(f"{console}/plugins", headers={"X-Meccano-Token": CONSOLE_TOKEN})
        assert status == 200
        listed = {p["plugin"]: p for p in json.loads(body)}
        original = json.loads((ROOT / "meccano_plugins" / "updatesByDevice:1.0" / "plugin.json").read_text())
        assert listed["updatesByDevice:1.0"] == original  # the plugin.json as written
        assert _get(f"{console}/plugins")[0] == 401
        assert _get(f"{console}/plugins", headers={"X-Meccano-Token": "wrong-token"})[0] == 401

        def console_image() -> bytes | None:
            status, data, kind = _get(f"{console}/plugins/fleetStatusHistory/output.png",
                                      headers={"X-Meccano-Token": CONSOLE_TOKEN})
            return data if status == 200 and kind == "image/png" and data[:4] == b"\x89PNG" else None

        assert _poll("a report image fetched as the console does", console_image, 120)
        assert _get(f"{console}/plugins/fleetStatusHistory/output.png")[0] == 401

        # A plugin whose interpreter this machine lacks (R without Rscript) is left paused, named at start-up
        # and marked in the listing; the others run.
        _assert_held_plugins_paused(base, token, banner)

        # A living fleet at once: every report chart of the first runs has data (not "No data").
        def charts_with_data() -> dict[str, int]:
            status, body, _ = _get(f"{base}/meccano/plugins", token)
            rows = [r for r in json.loads(body) if r["type"] == "report" and r["valid"] and not r["shadowed_by"]
                    and r["enabled"] and not r["needs"]]
            lines = {}
            for r in rows:
                link = r["links"]["report_data"]
                if not link:
                    return {}
                status, data, _ = _get(f"{base}{link}", token)
                lines[r["dag_id"]] = len(data.decode().splitlines()) if status == 200 else 0
            return lines if lines and all(n > 2 for n in lines.values()) else {}

        assert _poll("data in every report chart", charts_with_data, 420)
    finally:
        # Every process group the demo started (Airflow's workers rename themselves and
        # hide their environment, so their group is the reliable way to find them).
        groups = {_pgid(pid) for pid in _pids_with(str(state))} - {None, os.getpgid(0)}
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:  # leave nothing behind for the next tests, then fail
            for group in groups | {proc.pid}:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(group, signal.SIGKILL)
            raise
        finally:
            log.close()
    time.sleep(2)
    assert _processes_with(str(state)) == []
    assert groups, "found none of the demo's processes while it ran"
    assert [g for g in groups if _group_alive(g)] == []
    assert "nothing left running" in (tmp_path / "demo.out").read_text()
