"""DAG parse time of the Meccano factory vs astronomer's dag-factory, 10/100/1,000 plugins.

    .venv/bin/python bench/bench_parse.py [--sizes 10 100 1000] [--repeat 3] [--builders meccano] [--gc-freeze]
                                          [--baseline DIR]

Each measurement runs in a fresh subprocess: Airflow is imported first (not timed),
then a DagBag loads one DAG file and its own ``dagbag_stats`` duration is reported
(the figure the issue asks for). Both sides build the same DAGs: one task each, a cron
schedule, tags, catchup off. The Meccano side validates every plugin.json fully.

``--gc-freeze`` moves the objects of Airflow's import out of the garbage collector's reach
before timing (``gc.freeze()``), as Airflow's dag-processor does before it forks the
process that parses a file (``DagFileProcessorManager.before_run``); without it, a full
collection during the parse also walks every object Airflow's import created.

Bytecode: a deployed dag-processor imports the package from its compiled ``.pyc`` files (``pip
install`` compiles them; the image is built that way) and dag-factory comes from site-packages, compiled
at install. This machine sets ``PYTHONDONTWRITEBYTECODE=1``, which would make every timed parse of the
Meccano side compile ``include/meccano`` from source (about a tenth of its parse) while dag-factory's
bytecode is there: so the children run with bytecode caching on, after one untimed warm-up parse per
side. ``--no-bytecode`` times the old way (source compiled in every run).

``--builders ... given-catalog`` adds a bound: the Meccano factory handed a ready catalog, so discovery costs
nothing (what a perfect cache of validated manifests could reach at best).

``--clock instructions`` counts the instructions of the parse instead of timing it: each child runs under
valgrind (``cachegrind``, no cache simulation, ``PYTHONHASHSEED=0``), and the count of the same child on an empty
folder is taken away. The count does not drift with the machine's load (a run's figures repeat within 0.5%), so an
A/B of two trees needs one run per side; it leaves out what the kernel does for the parse (system calls, page
faults) and the cost of cache misses, which the clocks include. About a minute per child.

``--baseline DIR`` times the factory of another tree (say ``git archive <commit> include dags
config | tar -x -C DIR``) on the same generated plugins: a same-session A/B. All sides
alternate run for run, so the drift of a noisy machine hits them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILDERS = ("meccano", "dag-factory", "floor", "given-catalog")
SCHEDULES = ["*/5 * * * *", "0 2 * * *", "*/10 * * * *", "@daily", "15 */2 * * 1-5"]

MEASURE = textwrap.dedent("""
    import json, os, sys, time
    import airflow  # noqa: F401  (import cost excluded)
    from airflow.sdk import DAG  # noqa: F401
    from airflow.providers.standard.operators.bash import BashOperator  # noqa: F401
    from airflow.providers.standard.operators.python import PythonOperator  # noqa: F401
    from airflow.dag_processing.dagbag import DagBag
    folder = sys.argv[1]
    if os.environ.get("BENCH_GC_FREEZE"):
        import gc
        gc.freeze()
    t0, c0 = time.perf_counter(), time.process_time()
    bag = DagBag(dag_folder=folder, bundle_path=folder)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    duration = bag.dagbag_stats[0].duration if bag.dagbag_stats else 0.0  # none for an empty folder
    print(json.dumps({"dags": len(bag.dags), "errors": len(bag.import_errors),
                      "duration": duration.total_seconds() if hasattr(duration, "total_seconds")
                      else float(duration), "wall": wall, "cpu": cpu}))
""")


def make_meccano(base: Path, n: int) -> Path:
    plugins, dags = base / "plugins", base / "dags"
    plugins.mkdir(parents=True)
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
    return meccano_dag_file(dags, ROOT)


def meccano_dag_file(dags: Path, tree: Path) -> Path:
    """A dags folder holding ``tree``'s factory file, importing ``tree``'s include/."""
    dags.mkdir()
    text, include = (tree / "dags" / "meccano_dags.py").read_text(), 'Path(__file__).resolve().parents[1] / "include"'
    if include in text:  # an older tree's DAG file puts its own include/ on sys.path
        text = text.replace(include, repr(str(tree / "include")))
    else:  # today's imports the installed package: put ``tree``'s first (the parse runs in this process)
        text = f"import sys\nsys.path.insert(0, {str(tree / 'include')!r})  # airflow dag\n" + text
    (dags / "meccano_dags.py").write_text(text)
    return dags


def make_given_catalog(base: Path, plugins: Path) -> Path:
    """The Meccano factory handed its catalog ready-made (unpickled inside the timed parse): what the parse
    would cost with discovery free, e.g. behind a perfect cache of validated manifests. A bound, not a builder:
    it shows how much of the gap to dag-factory any discovery work can close."""
    import pickle

    from meccano.plugins.discovery import discover

    dags = base / "dags"
    dags.mkdir(parents=True)
    catalog = base / "catalog.pickle"
    catalog.write_bytes(pickle.dumps(discover(plugins)))
    (dags / "given_catalog_dags.py").write_text(textwrap.dedent(f"""
        # airflow dag
        import pickle
        from meccano.plugins import factory
        with open({str(catalog)!r}, "rb") as handle:
            catalog = pickle.load(handle)
        factory.discover = lambda root=None, name=None: catalog
        globals().update(factory.build_dags())
    """))
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


def make_floor(base: Path, n: int) -> Path:
    """Airflow's own share: the same DAGs and tasks (schedule, kwargs, operator per engine) from a plain loop,
    with no discovery, no validation, no documentation page and no project import. No builder can parse
    faster than this; dag-factory's time over it is the ceiling of any ratio."""
    dags = base / "dags"
    dags.mkdir(parents=True)
    (dags / "floor_dags.py").write_text(textwrap.dedent(f"""
        # airflow dag
        from datetime import UTC, datetime, timedelta
        from airflow.sdk import DAG, CronTriggerTimetable
        from airflow.providers.standard.operators.bash import BashOperator
        from airflow.providers.standard.operators.python import PythonOperator
        SCHEDULES = {SCHEDULES!r}
        TIMETABLES = {{s: CronTriggerTimetable(s, timezone="UTC") for s in SCHEDULES}}
        START = datetime(2024, 1, 1, tzinfo=UTC)
        def run(**kwargs): return None
        for i in range({n}):
            dag = DAG(dag_id=f"plugin{{i:04d}}", description=f"generated plugin {{i}}",
                      schedule=TIMETABLES[SCHEDULES[i % len(SCHEDULES)]], start_date=START, catchup=False,
                      max_active_runs=1, max_active_tasks=16, max_consecutive_failed_dag_runs=0,
                      disable_bundle_versioning=False, is_paused_upon_creation=False,
                      tags=["meccano", "type:report", "engine:native", "version:1.0"], doc_md="docs",
                      render_template_as_native_obj=False)
            task = dict(task_id="run", retries=2, retry_delay=timedelta(minutes=2), pool="iotdb", owner="meccano",
                        dag=dag)
            if i % 3 == 0:
                PythonOperator(python_callable=run, op_kwargs={{"plugin_folder": "x", "entry": "entrypoint"}}, **task)
            else:
                BashOperator(bash_command="echo run", **task)
            globals()[dag.dag_id] = dag
    """))
    return dags


def measure(dags: Path, env: dict[str, str], instructions: bool = False) -> dict:
    command = [sys.executable, "-c", MEASURE, str(dags)]
    if instructions:
        command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", *command]
        env = {**env, "PYTHONHASHSEED": "0"}
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if instructions:
        count = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
        if count is None:
            raise SystemExit(f"no instruction count in valgrind's output:\n{out.stderr[-2000:]}")
        result["instructions"] = int(count.group(1).replace(",", ""))
    return result


def _sides(tmp: Path, n: int, args: argparse.Namespace) -> list[tuple[str, Path]]:
    """(label, dags folder) of every side chosen, in the order they alternate."""
    sides = {"meccano": [("meccano factory", make_meccano(tmp / "meccano", n))],
             "dag-factory": [("dag-factory 1.1.0", make_dagfactory(tmp / "dagfactory", n))],
             "floor": [("Airflow floor", make_floor(tmp / "floor", n))]}
    if "given-catalog" in args.builders:
        sides["given-catalog"] = [("catalog given", make_given_catalog(tmp / "given", tmp / "meccano" / "plugins"))]
    if args.baseline:
        base = meccano_dag_file(tmp / "meccano" / "dags-baseline", args.baseline.resolve())
        sides["meccano"].insert(0, ("meccano baseline", base))
    return [side for b in BUILDERS if b in args.builders for side in sides[b]]


def run_size(n: int, args: argparse.Namespace, home: str) -> list[tuple[int, str, float, float]]:
    """(plugins, side, median, min) of each side at ``n`` plugins."""
    counting = args.clock == "instructions"
    rows = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        chosen = _sides(tmp, n, args)
        env = {**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "MECCANO_PLUGINS_DIR": str(tmp / "meccano" / "plugins"),
               "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600", "PYTHONWARNINGS": "ignore",
               **({"BENCH_GC_FREEZE": "1"} if args.gc_freeze else {})}
        if not args.no_bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            for _label, folder in chosen:  # untimed: writes the bytecode a deployed install already has
                measure(folder, env)
        empty = 0
        if counting:  # what the same child counts without any DAG file: taken away from every side
            (tmp / "empty").mkdir()
            empty = measure(tmp / "empty", env, instructions=True)["instructions"]
        results: dict[str, list[dict]] = {label: [] for label, _ in chosen}
        for _ in range(args.repeat):  # sides alternate run for run, so drift hits them alike
            for label, folder in chosen:
                results[label].append(measure(folder, env, instructions=counting))
        unit = "G instructions" if counting else "s"
        for label, runs in results.items():
            assert all(r["dags"] == n and r["errors"] == 0 for r in runs), runs
            durations = [(r["instructions"] - empty) / 1e9 if counting
                         else r["duration"] if args.clock == "parse" else r["cpu"] for r in runs]
            rows.append((n, label, statistics.median(durations), min(durations)))
            print(f"{n:>5} plugins  {label:18} median {rows[-1][2]:6.3f} {unit}  (min {rows[-1][3]:.3f}, "
                  f"{args.repeat} runs)  runs: {' '.join(f'{d:.3f}' for d in durations)}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--builders", nargs="+", choices=BUILDERS, default=list(BUILDERS[:3]),
                        help="which side(s) to time; the default is both (an A/B of the factory needs only meccano)")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() after Airflow's import, as the dag-processor does before parsing a file")
    parser.add_argument("--no-bytecode", action="store_true",
                        help="keep PYTHONDONTWRITEBYTECODE and skip the warm-up: the Meccano side compiles its "
                             "source in every timed run")
    parser.add_argument("--clock", choices=("parse", "cpu", "instructions"), default="parse",
                        help="parse: Airflow's own duration of the file's parse (wall clock); cpu: the parsing "
                             "process's CPU seconds, steadier than the wall clock on a machine other work shares; "
                             "instructions: the parse's instruction count under valgrind (no drift; leaves out "
                             "the kernel's work and cache misses)")
    parser.add_argument("--baseline", type=Path,
                        help="another tree (include/, dags/ and config/ of an older commit, e.g. from `git archive`) "
                             "whose factory is timed against this one on the same plugins, run for run")
    args = parser.parse_args()
    counting = args.clock == "instructions"
    if counting and shutil.which("valgrind") is None:
        raise SystemExit("--clock instructions needs valgrind on PATH (apt-get install valgrind)")
    home = tempfile.mkdtemp(prefix="bench-parse-home-")
    rows = [row for n in args.sizes for row in run_size(n, args, home)]
    floors = {n: med for n, label, med, _ in rows if label == "Airflow floor"}
    unit = "G instructions" if counting else "s"
    print(f"\n| plugins | builder | DagBag parse ({args.clock}), median ({unit}) | min | x Airflow floor |\n"
          "|---:|---|---:|---:|---:|")
    for n, label, med, low in rows:
        ratio = f"{med / floors[n]:.2f}" if n in floors else "-"
        print(f"| {n} | {label} | {med:.3f} | {low:.3f} | {ratio} |")


if __name__ == "__main__":
    main()
