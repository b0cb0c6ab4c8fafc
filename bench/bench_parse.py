"""DAG parse time of the Meccano factory vs astronomer's dag-factory, 10/100/1,000 plugins.

    .venv/bin/python bench/bench_parse.py [--sizes 10 100 1000] [--repeat 3]

Each measurement runs in a fresh subprocess: Airflow is imported first (not timed),
then a DagBag loads one DAG file and its own ``dagbag_stats`` duration is reported
(the figure the issue asks for). Both sides build the same DAGs: one task each, a cron
schedule, tags, catchup off. The Meccano side validates every plugin.json fully.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEDULES = ["*/5 * * * *", "0 2 * * *", "*/10 * * * *", "@daily", "15 */2 * * 1-5"]

MEASURE = textwrap.dedent("""
    import json, os, sys, time
    import airflow  # noqa: F401  (import cost excluded)
    from airflow.sdk import DAG  # noqa: F401
    from airflow.providers.standard.operators.bash import BashOperator  # noqa: F401
    from airflow.providers.standard.operators.python import PythonOperator  # noqa: F401
    from airflow.dag_processing.dagbag import DagBag
    folder = sys.argv[1]
    t0 = time.perf_counter()
    bag = DagBag(dag_folder=folder, bundle_path=folder)
    wall = time.perf_counter() - t0
    stat = bag.dagbag_stats[0]
    print(json.dumps({"dags": len(bag.dags), "errors": len(bag.import_errors),
                      "duration": stat.duration.total_seconds() if hasattr(stat.duration, "total_seconds")
                      else float(stat.duration), "wall": wall}))
""")


def make_meccano(base: Path, n: int) -> Path:
    plugins, dags = base / "plugins", base / "dags"
    plugins.mkdir(parents=True)
    dags.mkdir()
    for i in range(n):
        pid = f"plugin{i:04d}:1.{i % 3}"
        folder = plugins / pid
        (folder / "assets").mkdir(parents=True)
        engine = ("native", "python", "R")[i % 3]
        ext = {"native": ".py", "python": ".py", "R": ".R"}[engine]
        (folder / "plugin.json").write_text(json.dumps({
            "plugin": pid, "engine": engine, "enabled": True, "schedule": SCHEDULES[i % len(SCHEDULES)],
            "description": f"generated plugin {i}", "type": ("report", "worker", "stream")[i % 3],
            "executionContext": "master"}, indent=2))
        (folder / f"{pid}{ext}").write_text("def entrypoint(context):\n    return None\n")
        (folder / "assets" / "index.html").write_text(f"<h1>plugin {i}</h1><p>docs</p>")
    (dags / "meccano_dags.py").write_text((ROOT / "dags" / "meccano_dags.py").read_text().replace(
        'Path(__file__).resolve().parents[1] / "include"', repr(str(ROOT / "include"))))
    return dags


def make_dagfactory(base: Path, n: int) -> Path:
    import yaml

    dags = base / "dags"
    dags.mkdir(parents=True)
    config = {}
    for i in range(n):
        config[f"plugin{i:04d}"] = {
            "default_args": {"owner": "meccano", "start_date": "2024-01-01", "retries": 2},
            "schedule": SCHEDULES[i % len(SCHEDULES)], "catchup": False, "max_active_runs": 1,
            "description": f"generated plugin {i}", "tags": ["meccano", f"type:{i % 3}"],
            "tasks": {"run": {"operator": "airflow.providers.standard.operators.bash.BashOperator",
                              "bash_command": "echo run"}},
        }
    (dags / "config.yml").write_text(yaml.safe_dump(config))
    (dags / "dagfactory_dags.py").write_text(textwrap.dedent(f"""
        # airflow dag
        from dagfactory import load_yaml_dags
        load_yaml_dags(globals_dict=globals(), config_filepath={str(dags / 'config.yml')!r})
    """))
    return dags


def measure(dags: Path, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, str(dags)], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="bench-parse-home-")
    rows = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            mec = make_meccano(Path(tmp) / "meccano", n)
            dfy = make_dagfactory(Path(tmp) / "dagfactory", n)
            env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                   "MECCANO_PLUGINS_DIR": str(Path(tmp) / "meccano" / "plugins"),
                   "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600", "PYTHONWARNINGS": "ignore"}
            for label, folder in (("meccano factory", mec), ("dag-factory 1.1.0", dfy)):
                results = [measure(folder, env) for _ in range(args.repeat)]
                assert all(r["dags"] == n and r["errors"] == 0 for r in results), results
                med = statistics.median(r["duration"] for r in results)
                rows.append((n, label, med, min(r["duration"] for r in results)))
                print(f"{n:>5} plugins  {label:18} median {med:6.3f} s  (min {rows[-1][3]:.3f} s, "
                      f"{args.repeat} runs)", flush=True)
    print("\n| plugins | builder | DagBag parse, median (s) | min (s) |\n|---:|---|---:|---:|")
    for n, label, med, low in rows:
        print(f"| {n} | {label} | {med:.3f} | {low:.3f} |")


if __name__ == "__main__":
    main()
