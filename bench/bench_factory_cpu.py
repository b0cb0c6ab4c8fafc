"""CPU time of the Meccano factory in-process: discovery + validation, then the whole build_dags().

    .venv/bin/python bench/bench_factory_cpu.py [--plugins 1000] [--repeat 7] [--baseline DIR]

CPU time (``time.process_time()``) rather than wall time: on a loaded machine it moves far less
than the DagBag's duration (bench_parse.py). Each run is a fresh subprocess: Airflow and the
operators are imported first, ``gc.freeze()`` as in Airflow's dag-processor, then ``discover()`` and
``build_dags()`` are timed on the same generated plugins (bench_parse.make_meccano). With
``--baseline DIR`` (``git archive <commit> include dags config | tar -x -C DIR``) the factory of that
tree alternates run for run with this one.
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
sys.path.insert(0, str(ROOT / "bench"))

from bench_parse import make_meccano  # noqa: E402

MEASURE = textwrap.dedent("""
    import gc, json, sys, time
    sys.path.insert(0, sys.argv[1])
    import airflow  # noqa: F401  (import cost excluded)
    from airflow.sdk import DAG  # noqa: F401
    from airflow.providers.standard.operators.bash import BashOperator  # noqa: F401
    from airflow.providers.standard.operators.python import PythonOperator  # noqa: F401
    from pathlib import Path
    from meccano.plugins.discovery import discover
    from meccano.plugins.factory import build_dags
    gc.freeze()
    root = Path(sys.argv[2])
    t0 = time.process_time(); discover(root); t1 = time.process_time()
    dags = build_dags(root); t2 = time.process_time()
    print(json.dumps({"discover": t1 - t0, "build_dags": t2 - t1, "dags": len(dags)}))
""")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plugins", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--baseline", type=Path)
    args = parser.parse_args()
    sides = [("this tree", ROOT / "include")]
    if args.baseline:
        sides.insert(0, ("baseline", args.baseline.resolve() / "include"))
    with tempfile.TemporaryDirectory() as tmp:
        make_meccano(Path(tmp), args.plugins)
        plugins = Path(tmp) / "plugins"
        env = {**os.environ, "MECCANO_PLUGINS_DIR": str(plugins)}
        results: dict[str, list[dict]] = {name: [] for name, _ in sides}
        for _ in range(args.repeat):
            for name, include in sides:
                out = subprocess.run([sys.executable, "-c", MEASURE, str(include), str(plugins)], env=env,
                                     capture_output=True, text=True, timeout=600, check=True)
                results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    for name, runs in results.items():
        for key in ("discover", "build_dags"):
            values = [r[key] for r in runs]
            print(f"{args.plugins} plugins  {name:10} {key:10} median {statistics.median(values):.3f} s "
                  f"(min {min(values):.3f}, max {max(values):.3f}, {len(values)} runs)")


if __name__ == "__main__":
    main()
