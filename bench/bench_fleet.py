"""Benchmark: sensorStatistics and historyStatus on a large ``Facts`` table in MariaDB.

    .venv/bin/python bench/bench_fleet.py --rows 1000000 10000000 --covering-index --runs 3

Starts a throw-away MariaDB 10.11 (the test set-up's starter, 256 MB buffer pool),
generates one day of readings of 750 stores x 12 devices x 4 sensors with
``INSERT ... SELECT`` over MariaDB's sequence tables (``seq_0_to_N``), spread over the
last 24 hours so the default statistics window covers all of it, registers the 9,000
devices with announcements of various ages, then runs each plugin's function
``--runs`` times, each in a fresh Python process: wall seconds and the peak RSS of
that process (``ru_maxrss``, the task's memory; MariaDB's own memory is not counted).
Prints the query plan of the statistics query and a Markdown table. ``--covering-index``
then creates ``Facts_stats_idx`` (the index ``db init`` adds for sensorStatistics) and measures
again, with the single-row insert rate before and after (the gateway's cost).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT)]

STORES, DEVICES_PER_STORE, SENSORS = 750, 12, 4
DEVICES = STORES * DEVICES_PER_STORE
CHUNK_DEVICES = 250
COVERING = "Facts_stats_idx"


def _iotdb(uri: str):
    from airflow.sdk import Connection

    from meccano.iotdb.db import Iotdb

    return Iotdb(Connection.from_uri(uri, conn_id="meccano_iotdb"))


def generate(uri: str, rows: int) -> float:
    """Facts rows for one day; returns rows per second of the generation."""
    from meccano.iotdb.schema import ensure_schema

    db = _iotdb(uri)
    ensure_schema(db)
    # The baseline is the gateway's indexes + Facts_creationDate_idx: Facts_stats_idx
    # (schema.py) is added later by --covering-index, so both variants are measured.
    db.execute(f"DROP INDEX {COVERING} ON Facts")
    per_sensor = max(1, rows // (DEVICES * SENSORS))
    step = 86_000 // per_sensor  # seconds between two readings of one sensor
    started = time.monotonic()
    for first in range(0, DEVICES, CHUNK_DEVICES):
        db.execute(f"""
            INSERT INTO Facts (channel, year, month, day, week_day, hour, minute, second, device_group,
                               device, sensor, data, creationDate)
            SELECT 'bench', YEAR(t.at), MONTH(t.at), DAY(t.at), DAYOFWEEK(t.at) - 1, HOUR(t.at), MINUTE(t.at),
                   SECOND(t.at), CONCAT('store', LPAD(t.d DIV {DEVICES_PER_STORE}, 3, '0')),
                   CONCAT('dev', LPAD(t.d, 5, '0')), t.s, t.v, t.at
            FROM (SELECT d.seq + {first} AS d, s.seq AS s, (k.seq * 7919 + d.seq * 31 + s.seq * 101) % 1000 AS v,
                         NOW() - INTERVAL 86390 SECOND + INTERVAL (k.seq * {step} + (d.seq % 200)) SECOND AS at
                  FROM seq_0_to_{CHUNK_DEVICES - 1} d, seq_1_to_{SENSORS} s, seq_0_to_{per_sensor - 1} k) t""")
    elapsed = time.monotonic() - started
    db.execute(f"""INSERT INTO Registration (device, device_group, registrationDate)
                   SELECT CONCAT('dev', LPAD(seq, 5, '0')), IF(seq % 97 = 0, NULL,
                          CONCAT('store', LPAD(seq DIV {DEVICES_PER_STORE}, 3, '0'))), NOW()
                   FROM seq_0_to_{DEVICES - 1}""")
    db.execute(f"""INSERT INTO Announcement (device, lastAnnouncementDate)
                   SELECT CONCAT('dev', LPAD(seq, 5, '0')), NOW() - INTERVAL (seq % 40) MINUTE
                   FROM seq_0_to_{DEVICES - 1} WHERE seq % 50 <> 0""")
    total = db.scalar("SELECT COUNT(*) FROM Facts")
    db.dispose()
    return total / elapsed


def measure(uri: str, which: str) -> dict[str, float]:
    """One run in this (fresh) process: seconds and peak RSS in MB."""
    from meccano.config import load_settings
    from meccano.fleet.history import record_history
    from meccano.fleet.statistics import update_statistics

    settings = load_settings()
    db = _iotdb(uri)
    started = time.monotonic()
    if which == "statistics":
        run = update_statistics(db, settings)
        detail = f"{run.written} rows written"
    else:
        counts = record_history(db, settings)
        detail = json.dumps(counts)
    seconds = time.monotonic() - started
    db.dispose()
    return {"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "detail": detail}


def explain(uri: str) -> list[dict]:
    from meccano.fleet.clock import db_now
    from meccano.fleet.statistics import _SQUARE, AGGREGATE_SQL

    db = _iotdb(uri)
    now = db_now(db)
    from datetime import timedelta

    plan = db.query("EXPLAIN " + AGGREGATE_SQL.format(square=_SQUARE["mysql"]), since=now - timedelta(hours=24),
                    until=now)
    db.dispose()
    return plan


def run_plugins(uri: str, rows: int, variant: str, runs: int) -> list[tuple]:
    out = []
    for which in ("statistics", "history"):
        measured = []
        for _ in range(runs):
            done = subprocess.run([sys.executable, __file__, "--measure", which], check=True, capture_output=True,
                                  text=True, env={**os.environ, "PYTHONWARNINGS": "ignore", "MECCANO_BENCH_URI": uri})
            measured.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"  {variant} {which}: {measured[-1]}", flush=True)
        out.append((rows, which, variant, statistics.median(r["seconds"] for r in measured),
                    max(r["seconds"] for r in measured), max(r["peak_mb"] for r in measured)))
    return out


def insert_rate(uri: str, rows: int = 3000) -> float:
    """Single-row INSERTs as the gateway does them (autocommit each), rows per second."""
    db = _iotdb(uri)
    con = db.hook.get_conn()
    con.autocommit(True)
    cur = con.cursor()
    started = time.monotonic()
    for i in range(rows):
        cur.execute("INSERT INTO Facts (channel, year, month, day, week_day, hour, minute, second, device_group, "
                    "device, sensor, data) VALUES ('bench', 2026, 1, 1, 1, 0, 0, 0, %s, %s, %s, %s)",
                    (f"store{i % 750:03}", f"dev{(i * 7) % DEVICES:05}", 1 + i % SENSORS, i % 1000))
    rate = rows / (time.monotonic() - started)
    cur.execute("DELETE FROM Facts WHERE channel = 'bench' AND year = 2026 AND month = 1 AND day = 1 AND hour = 0")
    con.close()
    db.dispose()
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--measure", choices=["statistics", "history"], help=argparse.SUPPRESS)
    parser.add_argument("--covering-index", action="store_true",
                        help="after the baseline, add Facts(device, sensor, creationDate, data) and measure again, "
                             "with the cost of the index on inserts")
    args = parser.parse_args()
    if args.measure:  # the URI comes by environment: a password never shows in the process list
        print(json.dumps(measure(os.environ["MECCANO_BENCH_URI"], args.measure)))
        return 0

    import signal

    from tests.services.mariadb import start_mariadb

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the throw-away MariaDB on kill

    base = Path(tempfile.mkdtemp(prefix="meccano-bench-"))
    server = start_mariadb(base / "mariadb")
    results = []
    try:
        for rows in args.rows:
            name = f"BENCH_{rows}"
            server.create_database(name)
            uri = server.uri(name)
            rate = generate(uri, rows)
            actual = int(server.sql("SELECT COUNT(*) FROM Facts", name).strip())
            print(f"generated {actual:,} Facts rows at {rate:,.0f} rows/s", flush=True)
            for line in explain(uri):
                print("  plan:", {k: line[k] for k in ("table", "type", "key", "rows", "Extra")}, flush=True)
            results += run_plugins(uri, actual, "baseline", args.runs)
            if args.covering_index:
                before = insert_rate(uri)
                started = time.monotonic()
                server.sql(f"CREATE INDEX {COVERING} ON Facts (device, sensor, creationDate, data)", name)
                print(f"  created {COVERING} in {time.monotonic() - started:.1f} s", flush=True)
                after = insert_rate(uri)
                print(f"  gateway-style inserts (1 row per statement): {before:,.0f} rows/s without, "
                      f"{after:,.0f} rows/s with {COVERING}", flush=True)
                for line in explain(uri):
                    print("  plan:", {k: line[k] for k in ("table", "type", "key", "rows", "Extra")}, flush=True)
                results += run_plugins(uri, actual, "covering index", args.runs)
            server.sql(f"DROP DATABASE `{name}`")
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)  # the 10 M-row data directory is several GB
    print("\n| Facts rows | plugin | Facts indexes | median s | max s | peak RSS MB |\n|---:|---|---|---:|---:|---:|")
    for rows, which, variant, med, worst, peak in results:
        plugin = "sensorStatistics" if which == "statistics" else "historyStatus"
        print(f"| {rows:,} | {plugin} | {variant} | {med:.2f} | {worst:.2f} | {peak:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
