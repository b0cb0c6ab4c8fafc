"""Benchmark (issue 18), one run on one server, one day size, 50 single-row inserts a second:

1. the chunked purge of one exported day (``meccano.export.purge``) against its anchor, the loop an
   operator writes by hand: ``DELETE FROM Facts WHERE creationDate < ? LIMIT 10000`` in autocommit;
2. the conversion of ``Facts`` to daily partitions (its speed: the base of ``db partition``'s estimate;
   the longest insert during it is the lock the gateway sees);
3. the export of one day from the unpartitioned and from the partitioned table (same rows);
4. the purge of one exported day by taking its partition out (exchange + drop).

    flock /tmp/meccano-bench.lock .venv/bin/python bench/bench_partitions.py --rows-per-day 1000000

Starts its own MariaDB 10.11 and SeaweedFS (tests/services, like bench_export.py). Insert latencies are
recorded with their wall-clock start; each step's figures use the inserts that started while that step's
statements ran (its window), so a short step is not diluted by seconds of idle inserting. The server's CPU
is the sum over all ``mariadbd`` threads from ``/proc``, from a step's start until InnoDB's history list
has drained (the background purge of deleted rows belongs to the delete's cost).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT), str(ROOT / "bench")]
from bench_export import _free_port, generate, run_child, server_cpu, thread_cpu  # noqa: E402

FIRST_DAY = datetime(2024, 1, 1)
NOW = "2024-01-10T02:00:00"  # every generated day is older than EXPORT_DAYS=1


def _connect():  # noqa: ANN202
    import MySQLdb

    from meccano.config import load_settings
    from meccano.connections import iotdb_connection

    conn = iotdb_connection(load_settings())
    return MySQLdb.connect(host=conn.host, port=int(conn.port), user=conn.login, passwd=conn.password,
                           db=conn.schema, autocommit=True)


# --- children -------------------------------------------------------------------------------

def child_inserts(out: str) -> None:
    """50 single-row autocommit inserts a second until SIGTERM; (wall start, ms) pairs to ``out``."""
    cur = _connect().cursor()
    lat: list[tuple[float, float]] = []
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    nxt = time.monotonic()
    ready = Path(out + ".ready")
    while not stop:
        wall, t = time.time(), time.perf_counter()
        cur.execute("INSERT INTO Facts (channel, year, month, day, week_day, hour, minute, second, device_group, "
                    "device, sensor, data) VALUES ('live', 2026, 1, 1, 1, 0, 0, 0, 'g', 'aa:live', 1, 1)")
        lat.append((wall, (time.perf_counter() - t) * 1000))
        if len(lat) == 1:
            ready.touch()
        nxt += 0.02
        time.sleep(max(0.0, nxt - time.monotonic()))
    Path(out).write_text(json.dumps(lat))


def child_export(run_id: str) -> None:
    """plan + export + upload + verify of one day; the plan goes to $MECCANO_BENCH_PLAN for the purge."""
    from meccano.config import load_settings
    from meccano.export import chain
    from meccano.iotdb.db import Iotdb

    settings = load_settings()
    db = Iotdb.from_settings(settings)
    planned = chain.plan_step(settings, db, {}, run_id, datetime.fromisoformat(NOW))
    w0, t0 = time.time(), time.perf_counter()
    exported = chain.export_step(settings, db, planned)
    t1 = time.perf_counter()
    w1 = time.time()
    chain.upload_step(settings, db, planned, exported)
    chain.verify_step(settings, db, planned)
    Path(os.environ["MECCANO_BENCH_PLAN"]).write_text(json.dumps(planned))
    rows = sum(p["rows"] for p in exported["partitions"])
    print(json.dumps({"day": planned["partitions"][0]["day"], "rows": rows, "seconds": t1 - t0,
                      "rows_per_s": rows / (t1 - t0), "wall": [w0, w1]}))


def child_purge() -> None:
    import logging

    from meccano.config import load_settings
    from meccano.export import chain
    from meccano.iotdb.db import Iotdb

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.name.startswith("meccano"):
                lines.append(record.getMessage())

    logging.getLogger().addHandler(Keep())
    settings = load_settings()
    db = Iotdb.from_settings(settings)
    planned = json.loads(Path(os.environ["MECCANO_BENCH_PLAN"]).read_text())
    db.scalar("SELECT 1")  # connect before the clock starts
    w0, t0 = time.time(), time.perf_counter()
    result = chain.purge_step(settings, db, planned)
    print(json.dumps({"rows": result["purged"], "seconds": time.perf_counter() - t0, "wall": [w0, time.time()],
                      "log": [m for m in lines if "purge" in m][-3:]}))


def child_loop(before: str) -> None:
    """What an operator writes by hand: DELETE ... LIMIT 10000 in autocommit until nothing is left."""
    cur = _connect().cursor()
    w0, t0 = time.time(), time.perf_counter()
    rows = 0
    while True:
        n = cur.execute("DELETE FROM Facts WHERE creationDate < %s LIMIT 10000", (before,))
        rows += n
        if n == 0:
            break
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - t0, "wall": [w0, time.time()]}))


def child_convert(today: str, ahead: str) -> None:
    from meccano.config import load_settings
    from meccano.iotdb import partition_ops as ops
    from meccano.iotdb.db import Iotdb

    db = Iotdb.from_settings(load_settings())
    plan = ops.plan_conversion(db, "Facts", "creationDate", date.fromisoformat(today), int(ahead))
    w0 = time.time()
    seconds = ops.convert(db, plan)
    print(json.dumps({"rows": plan.rows, "bytes": plan.data_bytes, "seconds": seconds, "wall": [w0, time.time()],
                      "estimated_s": plan.lock_seconds, "partitions": len(plan.sql.split("PARTITION `")) - 1}))


# --- the run --------------------------------------------------------------------------------

def window(lat: list[tuple[float, float]], wall: list[float]) -> dict[str, float]:
    """Latency of the inserts that started while a step ran (and those it held up just before)."""
    w0, w1 = wall
    inside = [ms for t, ms in lat if w0 - 0.05 <= t <= w1 or (t < w0 and t + ms / 1000 > w0)]
    if not inside:
        return {"n": 0}
    q = statistics.quantiles(inside, n=100)[98] if len(inside) >= 100 else max(inside)
    return {"n": len(inside), "p99_ms": q, "median_ms": statistics.median(inside), "max_ms": max(inside)}


def overall(lat: list[tuple[float, float]]) -> dict[str, float]:
    ms = [m for _, m in lat]
    return {"n": len(ms), "p99_ms": statistics.quantiles(ms, n=100)[98], "median_ms": statistics.median(ms),
            "max_ms": max(ms)}


def main() -> None:  # noqa: PLR0915
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows-per-day", type=int, default=1_000_000)
    ap.add_argument("--child", default="")
    ap.add_argument("--arg", action="append", default=[])
    ap.add_argument("--baseline-seconds", type=float, default=20)
    a = ap.parse_args()
    children = {"inserts": child_inserts, "export": child_export, "purge": child_purge, "loop": child_loop,
                "convert": child_convert}
    if a.child:
        return children[a.child](*a.arg)

    import tests.services._proc as proc
    import tests.services.s3 as s3mod
    from tests.services.mariadb import start_mariadb

    proc.free_port = _free_port
    s3mod.free_port = _free_port
    work = Path(tempfile.mkdtemp(prefix="meccano-bench-part-"))
    mariadb = start_mariadb(work / "mariadb")
    s3 = s3mod.start_s3(work / "s3")
    days = 4
    res: dict = {"rows_per_day": a.rows_per_day, "days": days, "started": datetime.now().isoformat(timespec="seconds")}
    me = [sys.executable, str(Path(__file__).resolve())]
    inserter = None
    try:
        database = "IOTDB_BENCH"
        mariadb.create_database(database)
        s3.client().create_bucket(Bucket="bench")
        cfg = work / "config.yml"
        cfg.write_text("default:\n  export:\n    tables:\n      - {table: Facts, dateColumn: creationDate}\n"
                       "    maxDaysPerRun: 1\n    purgeChunkRows: 20000\n")
        env = {**os.environ, "AIRFLOW_CONN_MECCANO_IOTDB": mariadb.uri(database),
               "AIRFLOW_CONN_AWS_DEFAULT": s3.connection_uri(), "EXPORT_BUCKET": "bench",
               "EXPORT_LOCALDIRECTORY": str(work / "local"), "EXPORT_DAYS": "1", "MECCANO_CONFIG": str(cfg),
               "MECCANO_BENCH_PLAN": str(work / "plan.json"), "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
               "PYTHONPATH": f"{ROOT / 'include'}:{ROOT}:{ROOT / 'bench'}"}
        os.environ.update({k: env[k] for k in ("AIRFLOW_CONN_MECCANO_IOTDB", "MECCANO_CONFIG")})
        from meccano.config import load_settings
        from meccano.iotdb.db import Iotdb
        from meccano.iotdb.schema import ensure_schema

        db = Iotdb.from_settings(load_settings())
        ensure_schema(db)
        generate(None, database, a.rows_per_day * days, days, work, mariadb)
        day = [f"{FIRST_DAY + timedelta(days=d):%Y-%m-%d} 00:00:00" for d in range(days + 1)]

        def drain() -> float:
            t = time.perf_counter()
            while time.perf_counter() - t < 300 and int(mariadb.sql(
                    "SHOW GLOBAL STATUS LIKE 'Innodb_history_list_length'").split()[-1]) > 1000:
                time.sleep(0.5)
            return time.perf_counter() - t

        def step(name: str, args: list[str]) -> dict:
            """One child while the inserts run; its result, server CPU until drained."""
            cpu0 = thread_cpu(mariadb.proc.pid)
            _, _, out = run_child([*me, "--child", *args], env)
            r = json.loads(out.strip().splitlines()[-1])
            r["innodb_drain_s"] = drain()
            rows = r.get("rows", 0)
            r["server_cpu"] = server_cpu(cpu0, thread_cpu(mariadb.proc.pid), rows, r["seconds"] + r["innodb_drain_s"])
            if rows and "rows_per_s" not in r:
                r["rows_per_s"] = rows / r["seconds"]
            print(name, json.dumps(r), file=sys.stderr, flush=True)
            return r

        lat_file = work / "lat.json"
        inserter = subprocess.Popen([*me, "--child", "inserts", "--arg", str(lat_file)], env=env)
        deadline = time.monotonic() + 60
        while not Path(str(lat_file) + ".ready").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)
        w_base = [time.time(), 0.0]
        time.sleep(a.baseline_seconds)
        w_base[1] = time.time()

        # 1. export day 1 (plan for the chunked purge), chunked purge of it; the loop on day 2
        res["export_day1_unpartitioned"] = step("export", ["export", "--arg", "e1"])
        res["chunked_purge"] = step("chunked", ["purge"])
        res["delete_limit_loop"] = step("loop", ["loop", "--arg", day[2]])
        # 2. export day 3 from the unpartitioned table (days 3-4 left), convert, export it again partitioned
        res["export_day3_unpartitioned"] = step("export", ["export", "--arg", "e3a"])
        w_base2 = [time.time(), 0.0]
        time.sleep(a.baseline_seconds / 2)
        w_base2[1] = time.time()
        res["convert"] = step("convert", ["convert", "--arg", NOW[:10], "--arg", "3"])
        res["export_day3_partitioned"] = step("export", ["export", "--arg", "e3b"])
        w_base3 = [time.time(), 0.0]
        time.sleep(a.baseline_seconds / 2)
        w_base3[1] = time.time()
        # 3. purge day 3 by its partition
        res["partition_purge"] = step("drop", ["purge"])
        time.sleep(2)
        inserter.send_signal(signal.SIGTERM)
        inserter.wait(timeout=30)
        inserter = None
        lat = [tuple(x) for x in json.loads(lat_file.read_text())]
        res["inserts"] = {
            "baseline": window(lat, w_base), "baseline_before_conversion": window(lat, w_base2),
            "baseline_partitioned": window(lat, w_base3),
            **{k: window(lat, res[k]["wall"]) for k in ("chunked_purge", "delete_limit_loop", "convert",
                                                        "partition_purge")},
            "whole_run": overall(lat)}
        c, loop = res["chunked_purge"], res["delete_limit_loop"]
        res["ratios"] = {
            "chunked_vs_loop_rows_per_s": c["rows_per_s"] / loop["rows_per_s"],
            "chunked_vs_loop_p99": res["inserts"]["chunked_purge"]["p99_ms"] /
            res["inserts"]["delete_limit_loop"]["p99_ms"],
            "drop_p99_vs_baseline": res["inserts"]["partition_purge"]["p99_ms"] / res["inserts"]["baseline"]["p99_ms"],
            "export_partitioned_vs_unpartitioned": res["export_day3_partitioned"]["rows_per_s"] /
            res["export_day3_unpartitioned"]["rows_per_s"],
            "convert_rows_per_s": res["convert"]["rows"] / res["convert"]["seconds"],
            "convert_bytes_per_s": res["convert"]["bytes"] / res["convert"]["seconds"]}
        res["left_in_facts"] = int(mariadb.sql("SELECT COUNT(*) FROM Facts WHERE creationDate < '2025-01-01'",
                                               database).strip())
        print(json.dumps(res, indent=1))
    finally:
        if inserter is not None:
            inserter.kill()
        s3.stop()
        mariadb.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
