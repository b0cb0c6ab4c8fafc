"""Time from `make demo` to the UI being up and to the first report chart in the web view,
and the demo's memory (sum of RSS of every process it started), on this machine.

    .venv/bin/python bench/bench_demo.py [--minutes 6]

Starts the demo exactly as a user does (``make demo``) with a fresh state folder, polls
``/api/v2/monitor/health`` and ``/meccano/plugins``, samples memory every 2 s, then stops
it with SIGINT.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.services._proc import free_port  # noqa: E402


def rss_of(marker: str) -> int:
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() not in (proc / "environ").read_bytes():
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=6)
    args = parser.parse_args()
    port = free_port()
    state = Path(tempfile.mkdtemp(prefix="bench-demo-")) / "state"
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MECCANO_", "EXPORT_"))}
    t0 = time.monotonic()
    proc = subprocess.Popen(["make", "demo", f"DEMO_ARGS=--port {port} --state {state} --fresh"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    up = chart = None
    peak = 0
    token = None
    try:
        while time.monotonic() - t0 < args.minutes * 60:
            peak = max(peak, rss_of(str(state)))
            try:
                if up is None:
                    with urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=3) as r:
                        body = json.loads(r.read())
                    if all(body[k]["status"] == "healthy" for k in ("metadatabase", "scheduler", "dag_processor")):
                        up = time.monotonic() - t0
                        print(f"UI up after {up:.0f} s", flush=True)
                elif chart is None:
                    if token is None:
                        req = urllib.request.Request(f"{base}/auth/token", method="POST",
                                                     data=b'{"username":"admin","password":"admin"}',
                                                     headers={"Content-Type": "application/json"})
                        with urllib.request.urlopen(req, timeout=5) as r:
                            token = json.loads(r.read())["access_token"]
                    req = urllib.request.Request(f"{base}/meccano/plugins",
                                                 headers={"Authorization": f"Bearer {token}"})
                    with urllib.request.urlopen(req, timeout=10) as r:
                        rows = json.loads(r.read())
                    if any(row["links"]["report"] for row in rows):
                        chart = time.monotonic() - t0
                        print(f"first report chart after {chart:.0f} s", flush=True)
            except OSError:
                pass
            time.sleep(2)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(120)
    print(f"\n| from `make demo` to | seconds |\n|---|---:|\n| UI healthy | {up and round(up)} |\n"
          f"| first report chart in the web view | {chart and round(chart)} |\n\n"
          f"peak memory (sum of RSS of the demo's processes, sampled every 2 s over {args.minutes} min): "
          f"{peak / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
