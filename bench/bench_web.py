"""How long the web view takes to answer with many plugins and reports (local store).

    .venv/bin/python bench/bench_web.py --plugins 200 --reports 50 --repeat 7

Builds a temporary plugins folder (copies of updatesByDevice:1.0 under new names) and a
report store with one published chart per report plugin, mounts the app under /meccano
with Airflow's auth manager and a SQLite metadata DB, and prints the median and max
time of GET /meccano/plugins and GET /meccano/ (the page) in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plugins", type=int, default=200)
    parser.add_argument("--reports", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="meccano-bench-web-"))
    os.environ.update({"AIRFLOW_HOME": str(work), "MECCANO_PLUGINS_DIR": str(work / "plugins"),
                       "MECCANO_REPORTS_DIR": str(work / "reports"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                       "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{work / 'airflow.db'}"})
    from airflow.utils import db

    db.resetdb()
    template = ROOT / "meccano_plugins" / "updatesByDevice:1.0"
    for i in range(args.plugins):
        name = f"bench{i:04d}"
        folder = work / "plugins" / f"{name}:1.0"
        shutil.copytree(template, folder)
        (folder / "updatesByDevice:1.0.py").rename(folder / f"{name}:1.0.py")
        raw = json.loads((folder / "plugin.json").read_text())
        raw.update(plugin=f"{name}:1.0", type="report" if i < args.reports else "worker")
        (folder / "plugin.json").write_text(json.dumps(raw))
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from meccano.plugins.discovery import discover
    from meccano.reports import charts
    from meccano.reports.store import ReportStore
    from meccano.web.app import create_app

    store = ReportStore("file://" + str(work / "reports"))
    for load in discover().active:
        if load.manifest.type == "report":
            out = work / "out" / load.manifest.name
            charts.bar_chart(out / "output.png", charts.fold_top_n({f"d{j}": j for j in range(40)}, 25),
                             title="bench", value_label="v", category_label="device")
            charts.write_csv(out / "data.csv", ["d"], [[1]])
            store.publish(load.manifest, out)
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    token = init_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    outer = FastAPI()
    outer.mount("/meccano", create_app())
    client = TestClient(outer, headers={"Authorization": f"Bearer {token}"})
    for path in ("/meccano/plugins", "/meccano/"):
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200
        print(f"GET {path:18s} plugins={args.plugins} reports={args.reports} bytes={len(response.content):>7} "
              f"median={statistics.median(times):7.1f} ms max={max(times):7.1f} ms")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
