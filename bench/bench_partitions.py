"""Benchmark: one run on one server, one day size, 50 single-row inserts a second:

1. the chunked purge of an exported day (``meccano.export.purge``) against its anchor, the loop an
   operator writes by hand: ``DELETE FROM Facts WHERE creationDate < ? LIMIT 10000`` in autocommit,
   two days each in ABBA order (chunked, loop, loop, chunked) so that a drift of the machine cancels;
2. the conversion of ``Facts`` to daily partitions (its speed: the base of ``db partition``'s estimate;
   the longest insert during it is the lock the gateway sees);
3. the export's write path from the unpartitioned table (days 1, 4, 5) and from the partitioned one
   (day 5 again, same rows, then the later days);
4. the purge of ``--drop-days`` exported days by taking their partitions out (exchange + count + drop):
   each time, the median, and the insert latencies of all the drops pooled (one drop's window holds
   about 50 inserts, too few for a p99 of its own).

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
from bench_export import _free_port, bench_iotdb, generate, run_child, server_cpu, thread_cpu  # noqa: E402

FIRST_DAY = datetime(2024, 1, 1)
NOW = "2024-01-10T02:00:00"  # every generated day is older than EXPORT_DAYS=1


def _connect():  # noqa: ANN202
    import MySQLdb

    from meccano.settings.config import load_settings
    from meccano.settings.connections import iotdb_connection

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
    """plan + export (write, upload) + verify of one day; the plan goes to $MECCANO_BENCH_PLAN for the purge.

    "seconds" is the write path alone (``chain.write_days``: the snapshot read into part files), the figure the
    export section compares; the export task's uploads are not part of it.
    """
    from meccano.export import chain
    from meccano.iotdb.db import Iotdb
    from meccano.settings.config import load_settings

    settings = load_settings()
    db = Iotdb.from_settings(settings)
    planned = chain.plan_step(settings, db, {}, run_id, datetime.fromisoformat(NOW))
    spent = {"write": 0.0, "w0": 0.0, "w1": 0.0}
    real_write = chain.write_days

    def timed_write(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        spent["w0"] = spent["w0"] or time.time()
        t = time.perf_counter()
        try:
            return real_write(*args, **kwargs)
        finally:
            spent["write"] += time.perf_counter() - t
            spent["w1"] = time.time()

    chain.write_days = timed_write
    exported = chain.export_step(settings, db, planned)
    chain.verify_step(settings, db, planned)
    Path(os.environ["MECCANO_BENCH_PLAN"]).write_text(json.dumps(planned))
    rows = sum(p["rows"] for p in exported["partitions"])
    print(json.dumps({"day": planned["partitions"][0]["day"], "rows": rows, "seconds": spent["write"],
                      "rows_per_s": rows / spent["write"], "wall": [spent["w0"], spent["w1"]]}))


def child_purge() -> None:
    import logging

    from meccano.export import chain
    from meccano.iotdb.db import Iotdb
    from meccano.settings.config import load_settings

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.name.startswith("meccano"):
                lines.append(record.getMessage())

    settings = load_settings()
    db = Iotdb.from_settings(settings)
    planned = json.loads(Path(os.environ["MECCANO_BENCH_PLAN"]).read_text())
    db.scalar("SELECT 1")  # connect before the clock starts (Airflow's logging is set up by then)
    keep = logging.getLogger("meccano")
    keep.addHandler(Keep())
    keep.setLevel(logging.INFO)  # the run's level is WARNING: the log says which path purged and its timings
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
    from meccano.iotdb import partition_ops as ops
    from meccano.iotdb.db import Iotdb
    from meccano.settings.config import load_settings

    db = Iotdb.from_settings(load_settings())
    plan = ops.plan_conversion(db, "Facts", "creationDate", date.fromisoformat(today), int(ahead))
    w0 = time.time()
    seconds = ops.convert(db, plan)
    print(json.dumps({"rows": plan.rows, "bytes": plan.data_bytes, "seconds": seconds, "wall": [w0, time.time()],
                      "estimated_s": plan.lock_seconds, "partitions": len(plan.sql.split("PARTITION `")) - 1}))


# --- the run --------------------------------------------------------------------------------

def window(lat: list[tuple[float, float]], *walls: list[float]) -> dict[str, float]:
    """Latency of the inserts that started while the steps ran (and those they held up just before)."""
    inside = [ms for t, ms in lat
              if any(w0 - 0.05 <= t <= w1 or (t < w0 and t + ms / 1000 > w0) for w0, w1 in walls)]
    if not inside:
        return {"n": 0}
    q = statistics.quantiles(inside, n=100)[98] if len(inside) >= 100 else max(inside)
    return {"n": len(inside), "p99_ms": q, "median_ms": statistics.median(inside), "max_ms": max(inside)}


def pooled(steps: list[dict]) -> dict[str, float]:
    """Rows, seconds and rows/s of repeated steps together, with each step's seconds."""
    rows, seconds = sum(r["rows"] for r in steps), sum(r["seconds"] for r in steps)
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "each_s": [r["seconds"] for r in steps]}


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
    ap.add_argument("--drop-days", type=int, default=3, help="days purged by their partition (pooled figures)")
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
    days = 4 + a.drop_days  # chunked, loop, loop, chunked, then one dropped partition each
    res: dict = {"rows_per_day": a.rows_per_day, "days": days, "started": datetime.now().isoformat(timespec="seconds")}
    me = [sys.executable, str(Path(__file__).resolve())]
    inserter = None
    try:
        database = "IOTDB_BENCH"
        env = bench_iotdb(work, mariadb, s3, "    maxDaysPerRun: 1\n    purgeChunkRows: 20000\n")
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

        # 1. the chunked purge against the loop, in ABBA order (drift cancels): export + chunked purge of day 1,
        #    the loop on days 2 and 3, export + chunked purge of day 4
        res["export_unpartitioned"] = [step("export", ["export", "--arg", "e1"])]
        res["chunked_purge"] = [step("chunked", ["purge"])]
        res["delete_limit_loop"] = [step("loop", ["loop", "--arg", day[2]]), step("loop", ["loop", "--arg", day[3]])]
        res["export_unpartitioned"].append(step("export", ["export", "--arg", "e4"]))
        res["chunked_purge"].append(step("chunked", ["purge"]))
        # 2. export day 5 from the unpartitioned table, convert, export it again partitioned (same rows)
        res["export_unpartitioned"].append(step("export", ["export", "--arg", "e5a"]))
        w_base2 = [time.time(), 0.0]
        time.sleep(a.baseline_seconds / 2)
        w_base2[1] = time.time()
        res["convert"] = step("convert", ["convert", "--arg", NOW[:10], "--arg", "3"])
        res["export_partitioned"] = [step("export", ["export", "--arg", "e5b"])]
        w_base3 = [time.time(), 0.0]
        time.sleep(a.baseline_seconds)
        w_base3[1] = time.time()
        # 3. purge days 5 to the last by their partitions, each exported first
        res["partition_purge"] = [step("drop", ["purge"])]
        for d in range(6, days + 1):
            res["export_partitioned"].append(step("export", ["export", "--arg", f"e{d}"]))
            res["partition_purge"].append(step("drop", ["purge"]))
        time.sleep(2)
        inserter.send_signal(signal.SIGTERM)
        inserter.wait(timeout=30)
        inserter = None
        lat = [tuple(x) for x in json.loads(lat_file.read_text())]
        res["inserts"] = {
            "baseline": window(lat, w_base), "baseline_before_conversion": window(lat, w_base2),
            "baseline_partitioned": window(lat, w_base3), "convert": window(lat, res["convert"]["wall"]),
            **{k: window(lat, *(r["wall"] for r in res[k])) for k in ("chunked_purge", "delete_limit_loop",
                                                                    "partition_purge")},
            "whole_run": overall(lat)}
        # which phase of a drop held an insert up: the slow ones with their start relative to the drop's start
        # (the purge's log line gives the phases: prepare, exchange, count_held, ledger_and_drop)
        slow = 2 * res["inserts"]["baseline_partitioned"]["p99_ms"]
        res["drop_slow_inserts"] = [
            [[round(t - r["wall"][0], 3), round(ms, 1)] for t, ms in lat
             if ms > slow and r["wall"][0] - 0.05 <= t + ms / 1000 and t <= r["wall"][1]]
            for r in res["partition_purge"]]
        res["pooled"] = {k: pooled(res[k]) for k in ("chunked_purge", "delete_limit_loop", "export_unpartitioned",
                                                     "export_partitioned", "partition_purge")}
        c, loop, ins = res["pooled"]["chunked_purge"], res["pooled"]["delete_limit_loop"], res["inserts"]
        res["ratios"] = {
            "chunked_vs_loop_rows_per_s": c["rows_per_s"] / loop["rows_per_s"],
            "chunked_vs_loop_p99": ins["chunked_purge"]["p99_ms"] / ins["delete_limit_loop"]["p99_ms"],
            "drop_median_s": statistics.median(res["pooled"]["partition_purge"]["each_s"]),
            "drop_p99_vs_baseline": ins["partition_purge"]["p99_ms"] / ins["baseline"]["p99_ms"],
            "drop_p99_vs_partitioned_baseline":
                ins["partition_purge"]["p99_ms"] / ins["baseline_partitioned"]["p99_ms"],
            "export_partitioned_vs_unpartitioned": res["pooled"]["export_partitioned"]["rows_per_s"] /
            res["pooled"]["export_unpartitioned"]["rows_per_s"],
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
