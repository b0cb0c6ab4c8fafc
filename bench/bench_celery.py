"""Benchmark: the HA deployment on Celery workers, run by hand.

    flock /tmp/meccano-bench.lock .venv/bin/python bench/bench_celery.py --runs 200 --export-rows 1000000

Starts its own PostgreSQL, Redis, MariaDB and SeaweedFS (tests/services) and the cluster of the
distributed test (tests/support/ha/celery_cluster.py: two schedulers, a dag-processor, an API server,
Celery workers with their own HOME/TMPDIR/EXPORT_LOCALDIRECTORY), then measures, in one run:

1. ``--runs`` short plugin runs (a native plugin with one task that returns at once, spread over
   ``--dags`` DAGs since a plugin DAG allows one active run) through ONE Celery worker, then the same
   number through TWO: runs per minute (runs / (last run's end - first trigger)) and the median
   trigger-to-start latency (``dag_run.queued_at`` to the task's ``start_date``);
2. the nightly export (``s3_export``: plan, export, verify, purge) of ``--export-rows`` Facts rows of
   one old day, MariaDB -> S3, through the Celery cluster, then the same on a LocalExecutor cluster
   (two schedulers like the Celery cluster, same services, a fresh copy of the rows): run duration and the ratio.

Prints a JSON summary and a Markdown table (bench/README.md records them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.services.mariadb import start_mariadb  # noqa: E402
from tests.services.postgres import start_postgres  # noqa: E402
from tests.services.redis import start_redis  # noqa: E402
from tests.services.s3 import start_s3  # noqa: E402
from tests.support.ha.celery_cluster import CeleryCluster  # noqa: E402
from tests.support.ha.cluster import poll, wait  # noqa: E402  (wait: a failed run stops the benchmark at once)

WAIT = 3600
BUCKET = "meccano-bench"
DAY = "2024-03-01"  # old enough to be exported whatever the date


def short_plugins(root: Path, n: int) -> list[str]:
    ids = []
    for i in range(n):
        name = f"bench_short_{i:02d}"
        folder = root / f"{name}:1.0"
        folder.mkdir(parents=True)
        (folder / "plugin.json").write_text(json.dumps({
            "plugin": f"{name}:1.0", "engine": "native", "enabled": False, "schedule": "@daily",
            "description": "benchmark: one short task", "type": "worker", "executionContext": "master",
            "retries": 0}))
        (folder / f"{name}:1.0.py").write_text("def entrypoint(context):\n    return 1\n")
        ids.append(name)
    return ids


def export_plugin(root: Path) -> None:
    """The shipped s3_export, disabled (no scheduled run): only the benchmark's runs."""
    target = root / "s3_export:1.0"
    shutil.copytree(ROOT / "meccano_plugins" / "s3_export:1.0", target)
    manifest = json.loads((target / "plugin.json").read_text())
    manifest.update(enabled=False, retries=0)
    manifest.pop("enabledFromConfig", None)
    (target / "plugin.json").write_text(json.dumps(manifest))


def cluster(base: Path, name: str, pg, db_name: str, redis, settings: dict[str, str]) -> CeleryCluster:
    home = base / name / "airflow_home"
    home.mkdir(parents=True)
    pg.psql(f"CREATE DATABASE {db_name} OWNER airflow")
    ha = CeleryCluster(home=home, plugins_dir=base / "plugins", db_uri=pg.uri(db_name),
                       dsn=f"host=127.0.0.1 port={pg.port} dbname={db_name} user=airflow password={pg.password}",
                       broker_url=redis.url, settings_env=settings)
    ha.run("db", "migrate")
    ha.run("pools", "set", "iotdb", "32", "MYSQL_CONNECTIONLIMIT")  # what `meccano pool sync` does
    ha.start_services()
    poll(ha.healthy, 600, "the API server")
    return ha


def wait_dags(ha: CeleryCluster, dag_ids: list[str]) -> None:
    poll(lambda: set(dag_ids) <= {d["dag_id"] for d in ha.api("GET", "/dags?limit=500")["dags"]}, 600,
         "the DAGs to be parsed", interval=2)
    for dag_id in dag_ids:
        ha.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})


def batch(ha: CeleryCluster, dag_ids: list[str], runs: int) -> dict[str, float]:
    """Trigger ``runs`` runs round robin over the DAGs, wait for all; throughput and latency."""
    t0 = time.monotonic()
    run_ids = [ha.api("POST", f"/dags/{dag_ids[i % len(dag_ids)]}/dagRuns", {"logical_date": None})["dag_run_id"]
               for i in range(runs)]
    trigger_s = time.monotonic() - t0

    def done() -> bool:
        states = dict(ha.query("SELECT state, count(*) FROM dag_run WHERE run_id = ANY(%s) GROUP BY state",
                               run_ids))
        if states.get("failed"):
            raise RuntimeError(f"runs failed: {states}")
        return states.get("success", 0) == runs

    wait(done, WAIT, f"{runs} runs", interval=1)
    rows = ha.query("SELECT EXTRACT(EPOCH FROM ti.start_date - r.queued_at), "
                    "EXTRACT(EPOCH FROM r.queued_at), EXTRACT(EPOCH FROM r.end_date), ti.hostname "
                    "FROM dag_run r JOIN task_instance ti ON ti.dag_id = r.dag_id AND ti.run_id = r.run_id "
                    "WHERE r.run_id = ANY(%s)", run_ids)
    span = max(r[2] for r in rows) - min(r[1] for r in rows)
    hosts: dict[str, int] = {}
    for r in rows:
        hosts[r[3]] = hosts.get(r[3], 0) + 1
    return {"runs": runs, "seconds": round(float(span), 1), "runs_per_minute": round(runs / float(span) * 60, 1),
            "median_trigger_to_start_s": round(statistics.median(float(r[0]) for r in rows), 2),
            "p90_trigger_to_start_s": round(sorted(float(r[0]) for r in rows)[int(0.9 * len(rows))], 2),
            "trigger_api_s": round(trigger_s, 1), "tasks_per_worker": hosts}


def seed(mariadb, database: str, rows: int) -> None:
    """``rows`` Facts rows spread over DAY, generated by the server (MariaDB's sequence tables)."""
    mariadb.sql(f"""INSERT INTO Facts (channel, year, month, day, week_day, hour, minute, second, device_group,
        device, sensor, data, creationDate)
        SELECT CONCAT('channel', seq % 5), 2024, 3, 1, 4, (seq % 86400) DIV 3600, (seq % 3600) DIV 60, seq % 60,
               CONCAT('g', seq % 3), CONCAT('aa:', LPAD(seq % 500, 3, '0')), seq % 4, seq,
               TIMESTAMP('{DAY}') + INTERVAL (seq % 86400) SECOND
        FROM seq_1_to_{rows}""", database)


def export_run(ha: CeleryCluster, mariadb, database: str, rows: int) -> dict[str, object]:
    seed(mariadb, database, rows)
    assert int(mariadb.sql("SELECT count(*) FROM Facts", database).strip()) == rows
    run_id = ha.api("POST", "/dags/s3_export/dagRuns", {"logical_date": None})["dag_run_id"]

    def done() -> bool:
        state = ha.query("SELECT state FROM dag_run WHERE run_id = %s", run_id)[0][0]
        if state == "failed":
            raise RuntimeError(f"s3_export failed:\n{ha.log_tail()}")
        return state == "success"

    wait(done, WAIT, "the export run", interval=1)
    left = int(mariadb.sql("SELECT count(*) FROM Facts", database).strip())
    assert left == 0, f"{left} rows left in Facts after the export"
    (run_s,) = ha.query("SELECT EXTRACT(EPOCH FROM end_date - start_date) FROM dag_run WHERE run_id = %s",
                        run_id)[0]
    tasks = dict(ha.query("SELECT task_id, round(EXTRACT(EPOCH FROM end_date - start_date)::numeric, 1) "
                          "FROM task_instance WHERE run_id = %s", run_id))
    hosts = sorted({r[0] for r in ha.query("SELECT hostname FROM task_instance WHERE run_id = %s", run_id)})
    return {"rows": rows, "run_s": round(float(run_s), 1), "rows_per_s": round(rows / float(run_s)),
            "tasks_s": {k: float(v) for k, v in tasks.items()}, "hosts": hosts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--dags", type=int, default=20)
    parser.add_argument("--export-rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--only", choices=("runs", "export"), help="measure only the plugin runs or only the export")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="meccano-bench-celery-"))
    (base / "plugins").mkdir()
    dag_ids = short_plugins(base / "plugins", args.dags)
    export_plugin(base / "plugins")
    pg = start_postgres(base / "pg")
    redis = start_redis(base / "redis")
    mariadb = start_mariadb(base / "mariadb")
    s3 = start_s3(base / "s3")
    s3.client().create_bucket(Bucket=BUCKET)
    result: dict[str, object] = {"runs": args.runs, "dags": args.dags}
    clusters: list[CeleryCluster] = []
    try:
        settings = {"AIRFLOW_CONN_AWS_DEFAULT": s3.connection_uri(), "EXPORT_BUCKET": BUCKET,
                    "EXPORT_REMOTEDIRECTORY": "bench/", "MECCANO_REPORTS_DIR": f"s3://{BUCKET}/reports"}
        # --- Celery: 1 worker, then 2 -------------------------------------------------------------
        mariadb.create_database("IOTDB_CELERY")
        ha = cluster(base, "celery", pg, "airflow_celery", redis,
                     {**settings, "AIRFLOW_CONN_MECCANO_IOTDB": mariadb.uri("IOTDB_CELERY")})
        clusters.append(ha)
        ha.run("dags", "list")  # warm-up of the CLI (imports), not measured
        _schema(mariadb.uri("IOTDB_CELERY"))
        ha.start_worker("worker-a")
        ha.start_schedulers("scheduler-1", "scheduler-2")
        wait_dags(ha, [*dag_ids, "s3_export"])
        if args.only != "export":
            batch(ha, dag_ids, args.dags)  # warm-up: every DAG once (first parse in the workers), not measured
            result["one_worker"] = batch(ha, dag_ids, args.runs)
            print("1 worker:", result["one_worker"], flush=True)
        ha.start_worker("worker-b")
        if args.only != "export":
            result["two_workers"] = batch(ha, dag_ids, args.runs)
            print("2 workers:", result["two_workers"], flush=True)
        if args.only == "runs":
            return _report(args, result)
        result["export_celery"] = export_run(ha, mariadb, "IOTDB_CELERY", args.export_rows)
        print("export, Celery:", result["export_celery"], flush=True)
        ha.stop_all()
        clusters.remove(ha)

        # --- LocalExecutor, same services --------------------------------------------------------
        mariadb.create_database("IOTDB_LOCAL")
        _schema(mariadb.uri("IOTDB_LOCAL"))
        local = cluster(base, "local", pg, "airflow_local", redis,
                        {**settings, "AIRFLOW_CONN_MECCANO_IOTDB": mariadb.uri("IOTDB_LOCAL"),
                         "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": "2",
                         "EXPORT_LOCALDIRECTORY": f"{base / 'local' / 'export'}/",
                         # its own prefix: the target refuses a second export of a day it holds already
                         "EXPORT_REMOTEDIRECTORY": "bench-local/"})
        clusters.append(local)
        # the same control plane as the Celery cluster (two schedulers, a dag-processor, an API server): on one
        # 2-core machine they share the cores with MariaDB, so only the executor may differ between the runs
        local.start_schedulers("scheduler-1", "scheduler-2")
        wait_dags(local, ["s3_export"])
        result["export_local"] = export_run(local, mariadb, "IOTDB_LOCAL", args.export_rows)
        print("export, LocalExecutor:", result["export_local"], flush=True)
        result["export_ratio_celery_to_local"] = round(
            result["export_celery"]["run_s"] / result["export_local"]["run_s"], 2)  # type: ignore[index]
    finally:
        for c in clusters:
            c.stop_all()
        s3.stop()
        mariadb.stop()
        redis.stop()
        pg.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    _report(args, result)


def _report(args: argparse.Namespace, result: dict) -> None:
    print(json.dumps(result, indent=2))
    if "one_worker" in result:
        one, two = result["one_worker"], result["two_workers"]
        print("\n| | 1 worker | 2 workers |\n|---|---:|---:|")
        for key in ("runs_per_minute", "median_trigger_to_start_s", "p90_trigger_to_start_s", "seconds"):
            print(f"| {key} | {one[key]} | {two[key]} |")
    if "export_local" in result:
        ec, el = result["export_celery"], result["export_local"]
        print(f"\nexport of {args.export_rows:,} rows: Celery {ec['run_s']} s, LocalExecutor {el['run_s']} s, "
              f"ratio {result['export_ratio_celery_to_local']}")


def _schema(uri: str) -> None:
    import os

    from meccano.iotdb.db import Iotdb
    from meccano.iotdb.schema import ensure_schema
    from meccano.settings.config import load_settings

    os.environ["AIRFLOW_CONN_MECCANO_IOTDB"] = uri
    db = Iotdb.from_settings(load_settings())
    ensure_schema(db)
    db.dispose()


if __name__ == "__main__":
    main()
