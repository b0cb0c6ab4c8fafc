"""Benchmark: export and purge N Facts rows, MariaDB -> SeaweedFS S3, side by side with
(a) the amazon provider's SqlToS3Operator (pandas full load) and (b) ``mariadb --batch
--quick | gzip -6`` (the practical speed limit), then a chunked purge while a gateway-like
loop inserts 50 single rows a second and records their latency.

    flock /tmp/meccano-bench.lock .venv/bin/python bench/bench_export.py --rows 5000000 --days 5 \
        --purge-chunk-rows 20000 --skip-pandas-all

Starts its own MariaDB and SeaweedFS (tests/services); every method runs in a child
process whose peak RSS comes from GNU ``time -f %M`` (for the shell pipeline: its largest
process). Prints a JSON summary and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT)]
FIRST_DAY = datetime(2024, 1, 1)
NOW = "2024-02-01T02:00:00"


def _free_port() -> int:
    """A port whose +10000 (SeaweedFS's gRPC port) is still valid."""
    while True:
        port = random.randint(20000, 50000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue


def bench_iotdb(work: Path, mariadb, s3, export_yaml: str, bucket: str = "bench") -> dict[str, str]:  # noqa: ANN001
    """The benchmark's IOTDB (with its schema) and target: database, bucket, config (``export_yaml``: the ``export``
    section's lines below ``tables``); returns the children's environment (its IOTDB and config also set here)."""
    database = "IOTDB_BENCH"
    mariadb.create_database(database)
    s3.client().create_bucket(Bucket=bucket)
    cfg = work / "config.yml"
    cfg.write_text("default:\n  export:\n    tables:\n      - {table: Facts, dateColumn: creationDate}\n"
                   + export_yaml)
    env = {**os.environ, "AIRFLOW_CONN_MECCANO_IOTDB": mariadb.uri(database),
           "AIRFLOW_CONN_AWS_DEFAULT": s3.connection_uri(), "EXPORT_BUCKET": bucket,
           "EXPORT_LOCALDIRECTORY": str(work / "local"), "EXPORT_DAYS": "1", "MECCANO_CONFIG": str(cfg),
           "MECCANO_BENCH_PLAN": str(work / "plan.json"), "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
           "PYTHONPATH": f"{ROOT / 'include'}:{ROOT}:{ROOT / 'bench'}"}
    os.environ.update({k: env[k] for k in ("AIRFLOW_CONN_MECCANO_IOTDB", "MECCANO_CONFIG")})
    from meccano.iotdb.db import Iotdb
    from meccano.iotdb.schema import ensure_schema
    from meccano.settings.config import load_settings

    ensure_schema(Iotdb.from_settings(load_settings()))
    return env


def run_child(args: list[str], env: dict[str, str], shell: bool = False) -> tuple[float, int, str]:
    """(seconds, peak RSS in MB, stdout) of one child process."""
    argv = args if not shell else ["bash", "-o", "pipefail", "-c", args[0]]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as errf, \
            tempfile.NamedTemporaryFile("r") as rss:
        start = time.perf_counter()
        # GNU time forks the child from a small process: a fork of this (large) Python process
        # would count its RSS before exec.
        code = subprocess.call(["/usr/bin/time", "-f", "%M", "-o", rss.name, *argv], env=env, stdout=out,
                               stderr=errf)
        seconds = time.perf_counter() - start
        out.seek(0)
        errf.seek(0)
        text = out.read().decode(errors="replace")
        err = errf.read().decode(errors="replace")
        peak_kb = int(rss.read().strip().splitlines()[-1] or 0)
    if code != 0:
        raise RuntimeError(f"{args[0][:80]} failed ({code}):\n{err[-3000:]}")
    return seconds, peak_kb // 1024, text


def generate(db_sql, database: str, rows: int, days: int, work: Path, mariadb) -> None:  # noqa: ANN001
    per_day = rows // days
    tsv = work / "facts.tsv"
    t0 = time.perf_counter()
    with tsv.open("w") as fh:
        for d in range(days):
            base = FIRST_DAY + timedelta(days=d)
            step = 86400 / per_day
            for i in range(per_day):
                ts = base + timedelta(seconds=int(i * step))
                fh.write(f"channel{i % 7}\t{ts.year}\t{ts.month}\t{ts.day}\t{ts.weekday()}\t{ts.hour}\t{ts.minute}\t"
                         f"{ts.second}\tgroup{i % 5}\taa:bb:{i % 250:03d}\t{i % 4}\t{i % 1000}\t"
                         f"{ts:%Y-%m-%d %H:%M:%S}\n")
    subprocess.run(["mariadb", "--no-defaults", f"--socket={mariadb.socket}", "-uroot", "--local-infile=1",
                    database, "-e", f"LOAD DATA LOCAL INFILE '{tsv}' INTO TABLE Facts"], check=True)
    tsv.unlink()
    print(f"generated {rows:,} rows in {time.perf_counter() - t0:.0f}s", file=sys.stderr)


# --- child entry points ------------------------------------------------------------------

def child_ours(max_days: int, rep: str) -> None:
    from meccano.export import chain
    from meccano.iotdb.db import Iotdb
    from meccano.settings.config import load_settings

    os.environ["MECCANO_BENCH_MAXDAYS"] = str(max_days)
    settings = load_settings()
    db = Iotdb.from_settings(settings)
    if settings.section("export").get("format") == "parquet":  # its import belongs to the floor, like Airflow's
        import pyarrow.compute
        import pyarrow.csv
        import pyarrow.parquet  # noqa: F401
    when = datetime.fromisoformat(NOW)
    t0 = time.perf_counter()
    planned = chain.plan_step(settings, db, {}, f"bench-{max_days}-{rep}", when)
    t1 = time.perf_counter()
    from meccano.export.target import Target

    target = Target(settings)
    target.preflight()  # the S3 client's imports belong to the export task's floor, like Airflow's
    target.root.exists()
    task_runner_startup()
    floor_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # imports + plan: the task's floor
    # The export task writes the parts while it sends them to S3 (and prepares the target meanwhile): "export" is
    # the whole task; "write_days" the write alone (the rows read and the part files written, uploads running
    # beside it), what the shell pipeline does; "tail" what is left once the write ends (the last chunks, the
    # manifests, the ledger).
    writing = {"seconds": 0.0}
    real_write = chain.write_days

    def timed_write(*args, **kwargs):
        started = time.perf_counter()
        try:
            return real_write(*args, **kwargs)
        finally:
            writing["seconds"] += time.perf_counter() - started

    chain.write_days = timed_write
    t_export = time.perf_counter()
    exported = chain.export_step(settings, db, planned)
    t3 = time.perf_counter()
    export_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - floor_kb  # uploads included
    chain.verify_step(settings, db, planned)
    t4 = time.perf_counter()
    Path(os.environ["MECCANO_BENCH_PLAN"]).write_text(json.dumps(planned))
    from meccano.export.ledger import Ledger

    gz = sum(Ledger(db).get(p["table"], p["day"]).manifest.bytes for p in exported["partitions"])
    print(json.dumps({"rows": sum(p["rows"] for p in exported["partitions"]), "plan": t1 - t0, "gzip_bytes": gz,
                      "export": t3 - t_export, "tail": t3 - t_export - writing["seconds"], "verify": t4 - t3,
                      "write_days": writing["seconds"],
                      "floor_mb": floor_kb / 1024, "export_own_peak_mb": export_kb / 1024}))


def task_runner_startup() -> None:
    """What Airflow's task runner does before any task code (``task_runner.startup``: the listener manager,
    which loads the plugins): without it the export's first lineage record would pay the plugins' import here
    (0.6 s), which no real export task pays."""
    from airflow.sdk.listener import get_listener_manager

    get_listener_manager()


def child_baseline() -> None:
    """The same imports and one plan step: the process's floor, to subtract from the others."""
    from meccano.export import chain
    from meccano.iotdb.db import Iotdb
    from meccano.settings.config import load_settings

    settings = load_settings()
    chain.plan_step(settings, Iotdb.from_settings(settings), {}, "baseline", datetime.fromisoformat(NOW))
    task_runner_startup()
    print("{}")


def child_purge() -> None:
    from meccano.export import chain
    from meccano.iotdb.db import Iotdb
    from meccano.settings.config import load_settings

    settings = load_settings()
    db = Iotdb.from_settings(settings)
    planned = json.loads(Path(os.environ["MECCANO_BENCH_PLAN"]).read_text())
    t0 = time.perf_counter()
    result = chain.purge_step(settings, db, planned)
    print(json.dumps({"rows": result["purged"], "seconds": time.perf_counter() - t0}))


def child_pandas(bucket: str, start: str, end: str) -> None:
    from airflow.providers.amazon.aws.transfers.sql_to_s3 import SqlToS3Operator

    op = SqlToS3Operator(task_id="sql_to_s3", query=f"SELECT * FROM Facts WHERE creationDate >= '{start}' "
                         f"AND creationDate < '{end}'", s3_bucket=bucket, s3_key="pandas/facts.csv.gz",
                         sql_conn_id="meccano_iotdb", aws_conn_id="aws_default", file_format="csv",
                         replace=True, pd_kwargs={"index": False, "header": False, "compression": "gzip"})
    op.execute(context={})


def child_inserts(seconds: float, out: str) -> None:
    """50 single-row inserts a second, each its own autocommit statement; latencies to ``out``."""
    from meccano.settings.config import load_settings
    from meccano.settings.connections import iotdb_connection

    conn = iotdb_connection(load_settings())
    import MySQLdb

    con = MySQLdb.connect(host=conn.host, port=int(conn.port), user=conn.login, passwd=conn.password,
                          db=conn.schema, autocommit=True)
    cur = con.cursor()
    lat: list[float] = []
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    t_end = time.monotonic() + seconds
    nxt = time.monotonic()
    while time.monotonic() < t_end and not stop:
        t = time.perf_counter()
        cur.execute("INSERT INTO Facts (channel, year, month, day, week_day, hour, minute, second, device_group, "
                    "device, sensor, data) VALUES ('live', 2026, 1, 1, 1, 0, 0, 0, 'g', 'aa:live', 1, 1)")
        lat.append((time.perf_counter() - t) * 1000)
        nxt += 0.02
        time.sleep(max(0.0, nxt - time.monotonic()))
    Path(out).write_text(json.dumps(lat))


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each thread of a process, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        out[tid] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def server_cpu(before: dict[str, float], after: dict[str, float], rows: int, seconds: float) -> dict[str, float]:
    """The server's CPU during a step (its statements, InnoDB's background threads, the inserts): seconds,
    cores used on average, and microseconds per row of the step."""
    used = sum(after[t] - before.get(t, 0.0) for t in after)
    return {"total_s": used, "cores": used / seconds, "us_per_row": used / max(rows, 1) * 1e6}


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 100 else max(values)


def _parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--child", default="")
    ap.add_argument("--arg", action="append", default=[])
    ap.add_argument("--purge-chunk-rows", type=int, default=0, help="export.purgeChunkRows (0: config default)")
    ap.add_argument("--repeat", type=int, default=1, help="alternate (b) and ours this many times; medians")
    ap.add_argument("--skip-pandas-all", action="store_true", help="pandas on one day only (all days needs GBs)")
    ap.add_argument("--parquet", action="store_true", help="also export with format: parquet (one day, all days)")
    ap.add_argument("--server-option", action="append", default=[],
                    help="an extra mariadbd option, e.g. --server-option=--innodb-adaptive-hash-index=ON")
    return ap.parse_args()


def _run_child(a: argparse.Namespace) -> bool:
    """Run the step ``--child`` names (in this process, measured by the parent); False: not a child."""
    if a.child == "ours":
        child_ours(int(a.arg[0]), a.arg[1] if len(a.arg) > 1 else "0")
    elif a.child == "baseline":
        child_baseline()
    elif a.child == "purge":
        child_purge()
    elif a.child == "pandas":
        child_pandas(*a.arg)
    elif a.child == "inserts":
        child_inserts(float(a.arg[0]), a.arg[1])
    else:
        return False
    return True


def _medians(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """The median run of each series (by its speed), with the speeds of all its runs."""
    out: dict[str, dict] = {}
    for key, samples in runs.items():
        speed = "rows_per_s" if key.startswith("cli") else "rows_per_s_export"
        ordered = sorted(samples, key=lambda r, speed=speed: r[speed])
        out[key] = {**ordered[len(ordered) // 2], "all_rows_per_s": [round(r[speed]) for r in samples]}
    return out


def main() -> None:
    a = _parse_args()
    if _run_child(a):
        return

    import tests.services._proc as proc

    proc.free_port = _free_port
    import tests.services.s3 as s3mod
    from tests.services.mariadb import start_mariadb

    s3mod.free_port = _free_port
    work = Path(tempfile.mkdtemp(prefix="meccano-bench-"))
    # LOAD DATA LOCAL INFILE fills the Facts table fast; only this benchmark's own server allows it
    mariadb = start_mariadb(work / "mariadb", ["--local-infile=1", *a.server_option])
    s3 = s3mod.start_s3(work / "s3")
    results: dict = {"rows": a.rows, "days": a.days, "server_options": a.server_option}
    try:
        database, bucket = "IOTDB_BENCH", "bench"
        env = bench_iotdb(work, mariadb, s3, "    maxDaysPerRun: 100\n", bucket)
        cfg = Path(env["MECCANO_CONFIG"])
        generate(None, database, a.rows, a.days, work, mariadb)
        start, end = f"{FIRST_DAY:%Y-%m-%d} 00:00:00", f"{FIRST_DAY + timedelta(days=a.days):%Y-%m-%d} 00:00:00"
        one_day_end = f"{FIRST_DAY + timedelta(days=1):%Y-%m-%d} 00:00:00"
        me = [sys.executable, str(Path(__file__).resolve())]

        # (b) mariadb --batch --quick | gzip -6: the practical speed limit. It reaches the server the way the
        # product does (TCP to 127.0.0.1 with the IOTDB user; the password through MYSQL_PWD, never argv).
        # One day twice: as written (MariaDB picks its plan) and with the date index forced (its best plan).
        # --repeat N alternates (b) and ours N times (the machine is noisy); the figures are medians.
        cli_env = {**env, "MYSQL_PWD": mariadb.password}
        runs: dict[str, list[dict]] = {}
        floor = 0
        for rep in range(a.repeat):
            for label, upper, hint in (("one_day", one_day_end, ""),
                                       ("one_day_forced_index", one_day_end, " FORCE INDEX (Facts_creationDate_idx)"),
                                       ("all", end, "")):
                cmd = (f"mariadb --no-defaults -h 127.0.0.1 -P {mariadb.port} -u{mariadb.user} --batch --quick -N "
                       f"{database} -e \"SELECT * FROM Facts{hint} WHERE creationDate >= '{start}' "
                       f"AND creationDate < '{upper}'\" | gzip -6 > {work / 'cli.tsv.gz'}")
                sec, rss, _ = run_child([cmd], cli_env, shell=True)
                rows = a.rows // a.days if label != "all" else a.rows
                runs.setdefault(f"cli_{label}", []).append(
                    {"rows": rows, "seconds": sec, "rows_per_s": rows / sec, "peak_mb": rss,
                     "gzip_bytes": (work / "cli.tsv.gz").stat().st_size})
                print(rep, label, "cli", runs[f"cli_{label}"][-1], file=sys.stderr)
            if rep == 0:
                _, floor, _ = run_child([*me, "--child", "baseline"], env)
            # ours: one day, then all days (memory must stay flat)
            # (the CSV run of all days comes last: the purge below uses its plan)
            variants = [("one_day", 1, "csv"), ("all", a.days, "csv")]
            if a.parquet:
                variants[1:1] = [("one_day_parquet", 1, "parquet"), ("all_parquet", a.days, "parquet")]
            for label, max_days, file_format in variants:
                chunk = f"    purgeChunkRows: {a.purge_chunk_rows}\n" if a.purge_chunk_rows else ""
                cfg.write_text("default:\n  export:\n    tables:\n      - {table: Facts, dateColumn: creationDate}\n"
                               f"    maxDaysPerRun: {max_days}\n{chunk}    format: {file_format}\n")
                sec, rss, out = run_child([*me, "--child", "ours", "--arg", str(max_days), "--arg", str(rep)], env)
                r = json.loads(out.strip().splitlines()[-1])
                runs.setdefault(f"ours_{label}", []).append(
                    {**r, "seconds_total": sec, "rows_per_s_export": r["rows"] / r["write_days"],
                     "rows_per_s_end_to_end": r["rows"] / (r["plan"] + r["export"] + r["verify"]),
                     "peak_mb": rss})
                print(rep, label, "ours", runs[f"ours_{label}"][-1], file=sys.stderr)
        results["python_airflow_import_floor_mb"] = floor
        results.update(_medians(runs))

        # (a) SqlToS3Operator: pandas full load (one day, then all days)
        for label, upper in (("one_day", one_day_end), ("all", end)):
            if label == "all" and a.skip_pandas_all:
                continue
            rows = a.rows // a.days if label == "one_day" else a.rows
            try:
                sec, rss, _ = run_child([*me, "--child", "pandas", "--arg", bucket, "--arg", start, "--arg", upper],
                                        env)
                results[f"pandas_{label}"] = {"rows": rows, "seconds": sec, "rows_per_s": rows / sec, "peak_mb": rss}
            except RuntimeError as exc:
                results[f"pandas_{label}"] = {"rows": rows, "error": str(exc)[-300:]}
            print(label, "pandas", results[f"pandas_{label}"], file=sys.stderr)

        # purge while a gateway-like loop inserts 50 rows/s
        lat_base = work / "lat_base.json"
        run_child([*me, "--child", "inserts", "--arg", "10", "--arg", str(lat_base)], env)
        lat_purge = work / "lat_purge.json"
        inserter = subprocess.Popen([*me, "--child", "inserts", "--arg", "100000", "--arg", str(lat_purge)],
                                    env=env)
        time.sleep(2)
        cpu_before = thread_cpu(mariadb.proc.pid)
        sec, rss, out = run_child([*me, "--child", "purge"], env)
        drain_start = time.perf_counter()  # InnoDB's background purge of the deleted rows may still run
        while (time.perf_counter() - drain_start < 300 and int(mariadb.sql(
                "SHOW GLOBAL STATUS LIKE 'Innodb_history_list_length'").split()[-1]) > 1000):
            time.sleep(0.5)
        drain_seconds = time.perf_counter() - drain_start
        cpu_after = thread_cpu(mariadb.proc.pid)  # the purge's whole cost, its background part included
        inserter.terminate()
        inserter.wait()
        purge = json.loads(out.strip().splitlines()[-1])
        results["purge"] = {**purge, "rows_per_s": purge["rows"] / purge["seconds"], "peak_mb": rss,
                            "innodb_purge_drain_s": drain_seconds,
                            "server_cpu": server_cpu(cpu_before, cpu_after, purge["rows"], sec + drain_seconds)}
        base = json.loads(lat_base.read_text())
        results["insert_latency_ms"] = {"baseline_p99": p99(base), "baseline_median": statistics.median(base)}
        if lat_purge.exists():
            during = json.loads(lat_purge.read_text())
            results["insert_latency_ms"].update(during_purge_p99=p99(during), during_purge_median=statistics.median(
                during), during_purge_n=len(during))
        print(json.dumps(results, indent=1))
    finally:
        s3.stop()
        mariadb.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
