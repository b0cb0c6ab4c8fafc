"""The HA deployment on Celery workers, for real and without Docker (issue 13).

One cluster for the whole module (docs/ha.md, "The distributed test"): PostgreSQL (metadata DB and
Celery result backend), Redis (broker), MariaDB (IOTDB), SeaweedFS (S3: exports and reports), two
schedulers, a dag-processor, an API server and two Celery workers, ``worker-a`` and ``worker-b``,
each a separate process group with its own HOME, TMPDIR, AIRFLOW_HOME, EXPORT_LOCALDIRECTORY,
hostname and log-server port, as two hosts would have. No queue is pinned: Celery hands each task to
whichever worker takes it, and the task instances' ``hostname`` column tells where each one ran.

Cases, in order, on the same cluster:

1. every shipped plugin DAG (the R report included) runs to success, each task on its first try,
   tasks on both workers;
2. ``s3_export`` with the tasks of one run split across the workers: rows conserved (rows in S3 +
   rows left in Facts == rows inserted) over a re-run and late rows; no staging file left on a worker;
3. a worker SIGKILLed (with its tasks: the host dies) in the middle of an export task: the task is
   retried on the other worker, the run completes, no row lost or duplicated;
4. a scheduler SIGKILLed during a batch, then Redis restarted during another batch: every run
   completes, every task instance ran exactly once.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg2
import pytest

from tests.ha.celery_cluster import CeleryCluster
from tests.ha.cluster import poll
from tests.ha.plugins import read_executions, write_test_plugins
from tests.support.export import ROWS_PER_DAY, TargetReader, as_tuple, day_facts, fact, insert_facts

pytestmark = [pytest.mark.ha, pytest.mark.services]

ROOT = Path(__file__).resolve().parents[1]
WORKERS = ("worker-a", "worker-b")
SCHEDULERS = ("scheduler-1", "scheduler-2")
HA_MANUAL = ("ha_slow_a", "ha_slow_b", "ha_quick")
BUCKET, REMOTE = "meccano-ha", "ha-export"
WAIT = 300  # seconds: a safety net against hangs on a loaded 2-core machine, not a measured limit
TIMINGS: dict[str, float] = {}  # kill-to-recovery figures, printed at the end (docs/ha.md)
# export options of the cluster's MECCANO_ENV section: small parts, so a day makes several
SETTINGS_SECTION = """
ha:
  export:
    partBytes: 400000
    purgeChunkRows: 5000
"""


def shipped_dag_ids() -> list[str]:
    return sorted(p.name.split(":", 1)[0] for p in (ROOT / "meccano_plugins").iterdir() if (p / "plugin.json").exists())


@dataclass
class Iot:
    """The cluster's IOTDB and what the test put in it (Facts rows, as tuples)."""

    db: object
    inserted: Counter = field(default_factory=Counter)

    def insert(self, rows: list[dict]) -> None:
        insert_facts(self.db, rows)
        self.inserted.update(as_tuple(r) for r in rows)

    def facts(self) -> Counter:
        return Counter(as_tuple(r) for r in self.db.query("SELECT * FROM Facts"))


@dataclass
class Env:
    ha: CeleryCluster
    iot: Iot
    s3: object
    redis: object
    plugins_dir: Path
    jobs: dict[str, int]


def _today() -> datetime:
    """Midnight of today in the configured zone (Brazil/East): the export's days are local days."""
    now = datetime.now(ZoneInfo("America/Sao_Paulo")).replace(tzinfo=None)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _day(days_ago: int) -> str:
    return (_today() - timedelta(days=days_ago)).strftime("%Y-%m-%d")


@pytest.fixture(scope="module")
def env(postgres, mariadb, s3_server, redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    from meccano.config import load_settings
    from meccano.iotdb.db import Iotdb
    from meccano.iotdb.schema import ensure_schema

    base = tmp_path_factory.mktemp("ha-celery")
    plugins, home = base / "meccano_plugins", base / "airflow_home"
    shutil.copytree(ROOT / "meccano_plugins", plugins)
    home.mkdir()
    write_test_plugins(plugins)
    config = base / "config.yml"
    config.write_text((ROOT / "config" / "config.yml").read_text() + SETTINGS_SECTION)

    # the IOTDB, seeded before the cluster starts: s3_export's first scheduled run exports these old days
    mariadb.create_database("IOTDB_HA_CELERY")
    iotdb_uri = mariadb.uri("IOTDB_HA_CELERY")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_MECCANO_IOTDB", iotdb_uri)
        db = Iotdb.from_settings(load_settings())
    ensure_schema(db)
    iot = Iot(db)
    iot.insert([r for n in (5, 4, 3) for r in day_facts(_day(n), ROWS_PER_DAY, seed=n)])
    iot.insert([fact(_today() + timedelta(seconds=30 + i), 900_000 + i) for i in range(50)])  # young: they stay
    client = s3_server.client()
    try:
        client.create_bucket(Bucket=BUCKET)
    except (client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
        pass

    postgres.psql("CREATE DATABASE airflow_celery OWNER airflow")
    ha = CeleryCluster(
        home=home, plugins_dir=plugins, db_uri=postgres.uri("airflow_celery"),
        dsn=f"host=127.0.0.1 port={postgres.port} dbname=airflow_celery user=airflow password={postgres.password}",
        broker_url=redis_server.url,
        settings_env={
            "MECCANO_CONFIG": str(config), "MECCANO_ENV": "ha",
            "AIRFLOW_CONN_MECCANO_IOTDB": iotdb_uri,
            "AIRFLOW_CONN_AWS_DEFAULT": s3_server.connection_uri(),
            "EXPORT_BUCKET": BUCKET, "EXPORT_REMOTEDIRECTORY": f"{REMOTE}/",
            "MECCANO_REPORTS_DIR": f"s3://{BUCKET}/reports",
        })
    try:
        ha.migrate_and_start_services(WAIT)
        for name in WORKERS:
            ha.start_worker(name)
        jobs = ha.start_schedulers(*SCHEDULERS)
        wanted = {*shipped_dag_ids(), *HA_MANUAL}
        poll(lambda: wanted <= {d["dag_id"] for d in ha.api("GET", "/dags?limit=200")["dags"]},
             WAIT, "the dag-processor to serialize every plugin's DAG")
        yield Env(ha, iot, s3_server, redis_server, plugins, jobs)
    finally:
        ha.stop_all()
        poll(lambda: not ha.group_alive(), 60, "every process the cluster started to exit", interval=0.5)
        db.dispose()
        if TIMINGS:
            print("\nHA on Celery, kill-to-recovery: " + ", ".join(f"{k} {v:.1f}s" for k, v in TIMINGS.items()))


# --- helpers -------------------------------------------------------------------------------------------

def wait(check: Callable[[], Any], timeout: float, what: str, interval: float = 1.0,
         describe: Callable[[], str] | None = None) -> Any:
    """Like :func:`tests.ha.cluster.poll`, but an assertion inside ``check`` fails at once (a failed run
    must not look like a slow one), and a timeout says what the cluster was doing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (psycopg2.OperationalError, urllib.error.URLError, OSError):
            value = None  # a service restarting: ask again
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                         + (f"\n{describe()}" if describe else ""))


def _cluster_state(ha: CeleryCluster) -> str:
    runs = ha.query("SELECT dag_id, state, count(*) FROM dag_run GROUP BY dag_id, state ORDER BY 1, 2")
    tis = ha.query("SELECT dag_id, task_id, state, try_number, hostname FROM task_instance "
                   "WHERE state IS NULL OR state NOT IN ('success') ORDER BY 1, 2")
    return f"runs: {runs}\nunfinished task instances: {tis}\n{ha.log_tail(15)}"


def _trigger(ha: CeleryCluster, dag_id: str) -> str:
    return ha.api("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None})["dag_run_id"]


def _wait_runs(ha: CeleryCluster, runs: list[tuple[str, str]], timeout: float = WAIT) -> None:
    """Wait until every ``(dag_id, run_id)`` succeeded; fail at once if one failed."""
    def done() -> bool:
        states = {(d, r): s for d, r, s in ha.query(
            "SELECT dag_id, run_id, state FROM dag_run WHERE run_id = ANY(%s)", [r for _, r in runs])}
        failed = [k for k in runs if states.get(k) == "failed"]
        assert not failed, f"runs failed: {failed}\n{_failed_tis(ha)}\n{ha.log_tail()}"
        return all(states.get(k) == "success" for k in runs)

    wait(done, timeout, f"{len(runs)} run(s) to succeed", interval=1, describe=lambda: _cluster_state(ha))


def _failed_tis(ha: CeleryCluster) -> str:
    rows = ha.query("SELECT dag_id, run_id, task_id, state, try_number, hostname FROM task_instance "
                    "WHERE state IN ('failed', 'up_for_retry', 'upstream_failed')")
    return "task instances not successful: " + "; ".join(map(str, rows))


def _tis(ha: CeleryCluster, dag_id: str, run_id: str) -> list[tuple[str, str, int, str]]:
    """``(task_id, state, try_number, hostname)`` of one run."""
    return ha.query("SELECT task_id, state, try_number, hostname FROM task_instance WHERE dag_id = %s "
                    "AND run_id = %s ORDER BY task_id", dag_id, run_id)


def _assert_first_try(ha: CeleryCluster, dag_id: str, run_id: str) -> set[str]:
    """Every task of the run succeeded on its first try on one of the workers; returns the hosts used."""
    tis = _tis(ha, dag_id, run_id)
    assert tis, f"{dag_id} {run_id}: no task instances"
    bad = [t for t in tis if t[1] != "success" or t[2] != 1 or t[3] not in WORKERS]
    assert not bad, f"{dag_id} {run_id}: not all tasks succeeded on their first try on a worker: {bad}"
    return {t[3] for t in tis}


def _exported(ha_env: Env, relaxed: bool = False) -> tuple[Counter, list[str]]:
    """Rows in S3 (the parts each day's manifest lists, checksums verified) and keys no manifest lists."""
    reader = TargetReader(ha_env.s3.client(), BUCKET, prefix=f"{REMOTE}/facts")
    if not relaxed:
        return reader.rows(), []  # also asserts each day folder holds exactly its manifest's parts
    import csv
    import gzip
    import hashlib
    import io

    keys, found, listed = set(reader.keys()), Counter(), set()
    for folder, manifest in reader.manifests().items():
        listed.add(f"{folder}/manifest.json")
        for part in manifest["parts"]:
            key = f"{folder}/{part['key']}"
            listed.add(key)
            data = reader.read(key)
            assert hashlib.sha256(data).hexdigest() == part["sha256"], key
            rows = list(csv.reader(io.StringIO(gzip.decompress(data).decode())))
            assert len(rows) == part["rows"], key
            found.update(tuple(r) for r in rows)
    return found, sorted(keys - listed)


def _assert_conserved(ha_env: Env, relaxed: bool = False) -> list[str]:
    exported, unlisted = _exported(ha_env, relaxed)
    left = ha_env.iot.facts()
    doubles = (exported & left)
    assert not doubles, f"{sum(doubles.values())} row(s) both in S3 and still in Facts"
    assert exported + left == ha_env.iot.inserted, (
        f"rows not conserved: inserted {sum(ha_env.iot.inserted.values())}, in S3 {sum(exported.values())}, "
        f"in Facts {sum(left.values())}; missing {sum((ha_env.iot.inserted - exported - left).values())}, "
        f"extra {sum((exported + left - ha_env.iot.inserted).values())}")
    return unlisted


def _assert_no_staging(ha_env: Env, hosts: tuple[str, ...] = WORKERS) -> None:
    left = {h: [str(p) for p in ha_env.ha.workers[h].staging_files()] for h in hosts}
    assert not any(left.values()), f"staging files left on a worker after the runs: {left}"


def _active_export_runs(ha: CeleryCluster) -> list[str]:
    return [r[0] for r in ha.query("SELECT run_id FROM dag_run WHERE dag_id = 's3_export' "
                                   "AND state IN ('queued', 'running')")]


# --- 1. every shipped plugin ----------------------------------------------------------------------------

def test_every_shipped_plugin_runs_on_the_celery_workers(env: Env) -> None:
    """Each plugin of meccano_plugins/ (enabled ones on their schedule, disabled ones triggered by hand)
    succeeds, each task on its first try; the tasks ran on both workers."""
    ha, dag_ids = env.ha, shipped_dag_ids()
    t0 = time.monotonic()
    disabled = set()
    for folder in (ROOT / "meccano_plugins").iterdir():
        manifest = json.loads((folder / "plugin.json").read_text())
        if not manifest["enabled"]:
            disabled.add(folder.name.split(":", 1)[0])
    assert disabled, "the shipped examples are disabled plugins: they must be run by hand here"
    for dag_id in dag_ids:
        ha.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})
    for dag_id in sorted(disabled):  # no schedule of theirs comes up: run them by hand, as a user would
        _trigger(ha, dag_id)

    def first_runs() -> dict[str, str] | None:
        rows = ha.query("SELECT DISTINCT ON (dag_id) dag_id, run_id, state FROM dag_run WHERE dag_id = ANY(%s) "
                        "ORDER BY dag_id, id", dag_ids)
        failed = [(d, r) for d, r, s in rows if s == "failed"]
        assert not failed, f"plugin runs failed: {failed}\n{_failed_tis(ha)}\n{ha.log_tail()}"
        done = {d: r for d, r, s in rows if s == "success"}
        return done if set(done) == set(dag_ids) else None

    runs = wait(first_runs, WAIT, "one successful run of every shipped plugin", interval=2,
                describe=lambda: _cluster_state(ha))
    hosts: set[str] = set()
    for dag_id, run_id in runs.items():
        hosts |= _assert_first_try(ha, dag_id, run_id)
    assert hosts == set(WORKERS), f"tasks ran only on {hosts}: both workers should have taken some"
    report = ha.query("SELECT hostname FROM task_instance WHERE dag_id = 'deviceAvgTime' AND run_id = %s",
                      runs["deviceAvgTime"])
    assert report and report[0][0] in WORKERS  # the R report ran on a Celery worker
    TIMINGS["all shipped plugins, first runs"] = time.monotonic() - t0


# --- 2. s3_export split across the workers ------------------------------------------------------------

def test_s3_export_split_across_workers_conserves_rows(env: Env) -> None:
    ha, iot = env.ha, env.iot
    poll(lambda: not _active_export_runs(ha), WAIT, "earlier s3_export runs to finish", interval=2)
    ha.api("PATCH", "/dags/s3_export", {"is_paused": False})
    runs: list[str] = []
    # late rows in a day an earlier run exported, then a re-run with nothing new: both must keep every row once
    iot.insert(day_facts(_day(4), 40, seed=44, offset=50_000))
    for _ in range(2):
        runs.append(_trigger(ha, "s3_export"))
        _wait_runs(ha, [("s3_export", runs[-1])])
    hosts = {r: _assert_first_try(ha, "s3_export", r) for r in runs}
    # no queue is pinned: Celery decides; trigger more runs until one run's tasks ran on both workers
    while not any(len(h) == 2 for h in hosts.values()) and len(runs) < 6:
        iot.insert(day_facts(_day(3), 10, seed=len(runs), offset=60_000 + 100 * len(runs)))
        runs.append(_trigger(ha, "s3_export"))
        _wait_runs(ha, [("s3_export", runs[-1])])
        hosts[runs[-1]] = _assert_first_try(ha, "s3_export", runs[-1])
    assert any(len(h) == 2 for h in hosts.values()), f"no run had its tasks on both workers: {hosts}"
    for run_id in runs:  # every earlier run too (the scheduled one of case 1)
        assert ha.query("SELECT state FROM dag_run WHERE dag_id = 's3_export' AND run_id = %s", run_id)[0][0] \
            == "success"
    _assert_conserved(env)
    left = iot.facts()
    assert left and all(row[12] >= _today().strftime("%Y-%m-%d") for row in left), \
        "only rows younger than EXPORT_DAYS stay in Facts"
    _assert_no_staging(env)


# --- 3. a worker dies in the middle of an export task ---------------------------------------------------

def test_worker_killed_mid_export_is_retried_on_the_other(env: Env) -> None:
    ha, iot = env.ha, env.iot
    poll(lambda: not _active_export_runs(ha), WAIT, "earlier s3_export runs to finish", interval=2)
    iot.insert(day_facts(_day(6), 100_000, seed=66, offset=100_000))  # a day big enough to take a while
    run_id = _trigger(ha, "s3_export")

    def exporting() -> tuple[str, str] | None:
        """(worker, task) while a task of the run runs on a worker whose disk holds its staging files (parts
        being written or uploaded); should a chain stage nowhere on disk, its export task after 20 s."""
        running = ha.query("SELECT task_id, hostname, now() - start_date > interval '20 seconds' FROM task_instance "
                           "WHERE dag_id = 's3_export' AND run_id = %s AND state = 'running'", run_id)
        for task_id, host, for_a_while in running:
            if host in ha.workers and ((task_id == "export" and for_a_while) or ha.workers[host].staging_files()):
                return host, task_id
        return None

    victim, task_id = wait(exporting, WAIT, "an export task writing its parts on a worker", interval=0.05,
                           describe=lambda: _cluster_state(ha))
    survivor = next(w for w in WORKERS if w != victim)
    ha.kill_host(victim)
    killed_at = time.monotonic()
    left_on_victim = [str(p) for p in ha.workers[victim].staging_files()]

    def retried() -> bool:
        rows = ha.query("SELECT state, try_number, hostname FROM task_instance WHERE dag_id = 's3_export' "
                        "AND run_id = %s AND task_id = %s", run_id, task_id)
        return bool(rows) and rows[0][1] >= 2 and rows[0][0] in ("running", "success")

    wait(retried, WAIT, f"{task_id} to be retried after {victim} died", interval=0.5,
         describe=lambda: _cluster_state(ha))
    TIMINGS["worker SIGKILL -> task retried"] = time.monotonic() - killed_at
    _wait_runs(ha, [("s3_export", run_id)])
    TIMINGS["worker SIGKILL -> export run complete"] = time.monotonic() - killed_at
    tis = {t[0]: t for t in _tis(ha, "s3_export", run_id)}
    assert tis[task_id][1:] == ("success", 2, survivor), f"{task_id}: {tis[task_id]}"
    others = {t: v for t, v in tis.items() if t != task_id and (v[1] != "success" or v[3] not in WORKERS)}
    assert not others, others
    unlisted = _assert_conserved(env, relaxed=True)  # the killed attempt may have left parts no manifest lists
    _assert_no_staging(env, (survivor,))
    print(f"\nworker {victim} SIGKILLed in {task_id}; staging left on its disk: {len(left_on_victim)} file(s); "
          f"S3 objects no manifest lists: {unlisted}")
    ha.start_worker(victim)  # the host comes back (same disk) for the next cases


# --- 4. a scheduler dies, Redis restarts --------------------------------------------------------------

def _batch(ha: CeleryCluster, rounds: int) -> list[tuple[str, str]]:
    return [(d, _trigger(ha, d)) for _ in range(rounds) for d in HA_MANUAL]


def test_scheduler_killed_and_redis_restarted_during_batches(env: Env) -> None:
    ha, jobs = env.ha, env.jobs
    for dag_id in HA_MANUAL:
        ha.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})

    # --- a scheduler dies while a task it queued runs --------------------------------------------------
    batch = _batch(ha, rounds=2)

    victim = poll(lambda: ha.scheduler_running_slow_task(jobs), WAIT, "a slow task queued by a scheduler to run",
                  interval=0.2)
    survivor = next(n for n in jobs if n != victim)
    ha.kill(victim)
    killed_at = time.monotonic()
    _wait_runs(ha, batch)
    TIMINGS["scheduler SIGKILL -> batch complete"] = time.monotonic() - killed_at
    poll(lambda: ha.query("SELECT state FROM job WHERE id = %s", jobs[victim])[0][0] == "failed",
         WAIT, f"the survivor to mark {victim}'s job failed", interval=1)
    TIMINGS["scheduler SIGKILL -> its job marked failed"] = time.monotonic() - killed_at
    assert jobs[survivor] in ha.running_scheduler_jobs()

    # --- Redis restarts while a batch runs -------------------------------------------------------------
    batch2 = _batch(ha, rounds=2)
    poll(lambda: ha.query("SELECT count(*) FROM task_instance WHERE state = 'running' AND run_id = ANY(%s)",
                          [r for _, r in batch2])[0][0] > 0, WAIT, "a task of the second batch to run", interval=0.2)
    down_at = time.monotonic()
    env.redis.restart()
    TIMINGS["Redis restart (down to answering)"] = time.monotonic() - down_at
    _wait_runs(ha, batch2)
    TIMINGS["Redis restart -> batch complete"] = time.monotonic() - down_at

    # --- every task instance of both batches ran exactly once, on a worker -----------------------------
    executions = Counter((e["dag_id"], e["run_id"], e["task_id"])
                         for e in read_executions(env.plugins_dir) if e["phase"] == "start")
    hosts: set[str] = set()
    for dag_id, run_id in batch + batch2:
        hosts |= _assert_first_try(ha, dag_id, run_id)
        for task_id, *_ in _tis(ha, dag_id, run_id):
            assert executions[(dag_id, run_id, task_id)] == 1, \
                f"{dag_id}.{task_id} {run_id} ran {executions[(dag_id, run_id, task_id)]} times"
    assert hosts == set(WORKERS), hosts
    split = [r for d, r in batch + batch2 if d.startswith("ha_slow") and len(_assert_first_try(ha, d, r)) == 2]
    print(f"\n{len(batch + batch2)} runs, {len(split)} two-task runs split across both workers")
    # and nothing anywhere in the cluster ran twice or failed (scheduled plugin runs included)
    retried = ha.query("SELECT dag_id, run_id, task_id, try_number, state FROM task_instance "
                       "WHERE (try_number > 1 AND dag_id <> 's3_export') OR state IN ('failed', 'up_for_retry')")
    assert not retried, f"task instances retried or failed: {retried}"
