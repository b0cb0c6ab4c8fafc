"""Scheduler HA, for real: two schedulers on PostgreSQL 15, one SIGKILLed mid-batch.

What replaces the original MIRROR/PORT/SCHEDULER_MONITOR pair (docs/ha.md): every
scheduler works on the same metadata database and claims work with row locks, so a
crashed one loses nothing and no task runs twice. The test proves it on this machine:

1. two ``airflow scheduler`` processes, a dag-processor and the API server (LocalExecutor,
   parallelism 2 each) run the test plugins of ``tests/support/ha/plugins.py``;
2. a batch of runs is triggered; while a task queued by one scheduler runs, that
   scheduler's process is SIGKILLed;
3. every run completes, each task instance ran exactly once (every task records each
   execution in a file), the survivor creates the next scheduled run and declares the
   dead scheduler's job failed, even while a transaction like the one a killed scheduler
   can leave behind holds locks on the batch's runs (PostgreSQL ends it: docs/ha.md);
4. the killed scheduler is restarted: both heartbeat and the new one runs work again.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from tests.services.postgres import Postgres
from tests.support.ha.cluster import Cluster, poll
from tests.support.ha.plugins import read_executions, write_test_plugins

pytestmark = [pytest.mark.ha, pytest.mark.services]

MANUAL = ("ha_slow_a", "ha_slow_b", "ha_quick")
WAIT = 300  # seconds: a safety net against hangs on a loaded 2-core machine, not a measured limit


@pytest.fixture(scope="module")
def cluster(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("ha")
    plugins, home = base / "meccano_plugins", base / "airflow_home"
    plugins.mkdir()
    home.mkdir()
    write_test_plugins(plugins)
    postgres.psql("CREATE DATABASE airflow_ha OWNER airflow")
    uri = postgres.uri("airflow_ha")
    dsn = f"host=127.0.0.1 port={postgres.port} dbname=airflow_ha user=airflow password={postgres.password}"
    ha = Cluster(home=home, plugins_dir=plugins, db_uri=uri, dsn=dsn)
    try:
        ha.migrate_and_start_services(WAIT)
        yield ha
    finally:
        ha.stop_all()
        poll(lambda: not ha.group_alive(), 30, "every process the cluster started to exit", interval=0.5)


def _run_states(ha: Cluster, dag_ids: tuple[str, ...], run_ids: set[str] | None = None) -> Counter:
    rows = ha.query("SELECT run_id, state FROM dag_run WHERE dag_id = ANY(%s)", list(dag_ids))
    return Counter(state for run_id, state in rows if run_ids is None or run_id in run_ids)


def _trigger(ha: Cluster, rounds: int) -> set[str]:
    return {ha.api("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None})["dag_run_id"]
            for _ in range(rounds) for dag_id in MANUAL}


def _wait_success(ha: Cluster, run_ids: set[str]) -> None:
    def done() -> bool:
        states = _run_states(ha, MANUAL, run_ids)
        assert not states.get("failed"), f"a run failed: {states}\n{ha.log_tail()}"
        return states.get("success", 0) == len(run_ids)

    poll(done, WAIT, f"{len(run_ids)} runs to succeed", interval=2)


def _assert_each_ran_once(ha: Cluster, plugins_dir: Path) -> int:
    """Every finished task instance: state success, try 1, exactly one recorded execution."""
    tis = ha.query("SELECT dag_id, run_id, task_id, state, try_number FROM task_instance "
                   "WHERE state IS NOT NULL AND state NOT IN ('scheduled', 'queued', 'running')")
    starts = Counter((e["dag_id"], e["run_id"], e["task_id"]) for e in read_executions(plugins_dir)
                     if e["phase"] == "start")
    ends = Counter((e["dag_id"], e["run_id"], e["task_id"]) for e in read_executions(plugins_dir)
                   if e["phase"] == "end")
    problems = [f"{d}.{t} {r}: state={s} try={n} starts={starts[(d, r, t)]} ends={ends[(d, r, t)]}"
                for d, r, t, s, n in tis
                if s != "success" or n != 1 or starts[(d, r, t)] != 1 or ends[(d, r, t)] != 1]
    assert not problems, "task instances not run exactly once:\n" + "\n".join(problems)
    doubles = [key for key, n in starts.items() if n > 1]
    assert not doubles, f"executions recorded more than once: {doubles}"
    return len(tis)


def test_scheduler_failover(cluster: Cluster) -> None:
    ha, t0 = cluster, time.monotonic()
    jobs = ha.start_schedulers("scheduler-1", "scheduler-2")
    poll(lambda: {d["dag_id"] for d in ha.api("GET", "/dags?limit=100")["dags"]} >= {*MANUAL, "ha_tick"},
         WAIT, "the dag-processor to serialize the test plugins' DAGs")
    for dag_id in MANUAL:
        ha.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})
    batch = _trigger(ha, rounds=3)

    # --- kill the scheduler that queued a task that is running right now --------------
    victim = poll(lambda: ha.scheduler_running_slow_task(jobs), WAIT, "a slow task to run")
    survivor = next(n for n in jobs if n != victim)
    killed_at = ha.query("SELECT now()")[0][0]
    ha.kill(victim)
    orphaned = ha.query("SELECT count(*) FROM task_instance WHERE queued_by_job_id = %s "
                        "AND state IN ('queued', 'running')", jobs[victim])[0][0]
    assert orphaned >= 1, "the kill hit no running work; the test would prove nothing"
    # What a killed scheduler can leave behind: its open transaction, kept alive by the LocalExecutor workers
    # it forked (they hold its socket), with row locks the survivor skips (docs/ha.md). A stand-in holds such
    # locks on the batch's runs, idle: the metadata DB must end that transaction for the survivor to go on.
    zombie = psycopg2.connect(ha.dsn)
    try:
        zombie.cursor().execute("SELECT run_id FROM dag_run WHERE run_id = ANY(%s) FOR UPDATE", (list(batch),))

        # --- every run of the batch completes, each task once --------------------------
        _wait_success(ha, batch)
        with pytest.raises(psycopg2.Error):  # PostgreSQL ended the idle transaction, and its locks with it
            zombie.cursor().execute("SELECT 1")
    finally:
        zombie.close()
    # the survivor creates the next scheduled run of the every-minute plugin and runs it
    tick = poll(lambda: ha.query("SELECT run_id, creating_job_id FROM dag_run WHERE dag_id = 'ha_tick' "
                                 "AND run_type = 'scheduled' AND state = 'success' AND run_after > %s",
                                 killed_at), WAIT, "a scheduled ha_tick run after the kill", interval=2)
    assert tick[0][1] == jobs[survivor], f"scheduled run created by job {tick[0][1]}, not the survivor"
    # the survivor noticed the dead scheduler (its heartbeat stopped) and failed its job
    poll(lambda: ha.query("SELECT state FROM job WHERE id = %s", jobs[victim])[0][0] == "failed",
         WAIT, f"the survivor to mark {victim}'s job failed", interval=2)
    after_kill = ha.query("SELECT count(*) FROM task_instance WHERE queued_by_job_id = %s "
                          "AND queued_dttm > %s", jobs[survivor], killed_at)[0][0]
    assert after_kill >= 1, "the survivor queued nothing after the kill"
    first = _assert_each_ran_once(ha, ha.plugins_dir)
    failover_s = time.monotonic() - t0

    # --- restart the killed scheduler: both work again --------------------------------
    restarted = ha.start_schedulers(victim, after_id=max(jobs.values()))[victim]
    poll(lambda: {restarted, jobs[survivor]} <= set(ha.running_scheduler_jobs()), WAIT,
         "both schedulers to heartbeat")
    again: set[str] = set()
    for _ in range(4):  # work goes to whichever scheduler locks it first: repeat until both took some
        again |= _trigger(ha, rounds=2)
        _wait_success(ha, again)
        by_job = dict(ha.query("SELECT queued_by_job_id, count(*) FROM task_instance WHERE run_id = ANY(%s) "
                               "GROUP BY queued_by_job_id", list(again)))
        if by_job.get(restarted) and by_job.get(jobs[survivor]):
            break
    assert by_job.get(restarted), f"the restarted scheduler ran nothing: {by_job}"
    assert by_job.get(jobs[survivor]), f"the survivor ran nothing after the restart: {by_job}"
    assert {restarted, jobs[survivor]} <= set(ha.running_scheduler_jobs())
    total = _assert_each_ran_once(ha, ha.plugins_dir)
    print(f"\nHA failover: {len(batch)} runs in the batch, {orphaned} task instances orphaned by the kill, "
          f"{first} task instances before the restart, {total} in all, each run exactly once; "
          f"kill-to-recovery phase {failover_s:.0f}s, whole test {time.monotonic() - t0:.0f}s")
