"""Benchmark: sensorStatistics and historyStatus on a large ``Facts`` table in MariaDB.

    flock /tmp/meccano-bench.lock .venv/bin/python bench/bench_fleet.py --rows 10000000 --runs 3 [--layout device]

Starts a throw-away MariaDB 10.11 (the test set-up's starter, 256 MB buffer pool),
generates one day of readings of 750 stores x 12 devices x 4 sensors with
``INSERT ... SELECT`` over MariaDB's sequence tables (``seq_0_to_N``), spread over the
last 24 hours so the default statistics window covers all of it, registers the 9,000
devices with announcements of various ages. ``Facts`` has the gateway's index plus
``Facts_creationDate_idx`` (what ``db init`` creates). Then, each in a fresh Python process
(wall seconds and the peak RSS of that process, ``ru_maxrss``; MariaDB's own memory is not
counted): sensorStatistics' first run on empty ``DeviceStatisticsHour`` (the back-fill of the
whole window), then ``--runs`` steady-state runs (buckets present: only the look-back hours
are re-aggregated), then ``--runs`` historyStatus runs. Prints the query plan of one hour's
aggregation and a Markdown table. ``flock`` keeps it from overlapping other benchmarks.
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


def _iotdb(uri: str):
    from airflow.sdk import Connection

    from meccano.iotdb.db import Iotdb

    return Iotdb(Connection.from_uri(uri, conn_id="meccano_iotdb"))


def generate(uri: str, rows: int, layout: str) -> float:
    """Facts rows for one day; returns rows per second of the generation.

    ``layout``: ``device`` inserts 250 devices' whole day at a time, so one hour's rows lie
    scattered over 36 stretches of the table (worst case for a creationDate range read);
    ``time`` inserts about one hour of all devices at a time, in the order the gateway does.
    """
    from meccano.iotdb.schema import ensure_schema

    db = _iotdb(uri)
    ensure_schema(db)
    per_sensor = max(1, rows // (DEVICES * SENSORS))
    step = 86_000 // per_sensor  # seconds between two readings of one sensor
    if layout == "device":
        chunks = [(first, f"seq_0_to_{CHUNK_DEVICES - 1}", f"seq_0_to_{per_sensor - 1}")
                  for first in range(0, DEVICES, CHUNK_DEVICES)]
    else:
        steps = max(1, 3600 // step)
        chunks = [(0, f"seq_0_to_{DEVICES - 1}", f"seq_{k}_to_{min(k + steps, per_sensor) - 1}")
                  for k in range(0, per_sensor, steps)]
    started = time.monotonic()
    for first, devices, times in chunks:
        db.execute(f"""
            INSERT INTO Facts (channel, year, month, day, week_day, hour, minute, second, device_group,
                               device, sensor, data, creationDate)
            SELECT 'bench', YEAR(t.at), MONTH(t.at), DAY(t.at), DAYOFWEEK(t.at) - 1, HOUR(t.at), MINUTE(t.at),
                   SECOND(t.at), CONCAT('store', LPAD(t.d DIV {DEVICES_PER_STORE}, 3, '0')),
                   CONCAT('dev', LPAD(t.d, 5, '0')), t.s, t.v, t.at
            FROM (SELECT d.seq + {first} AS d, s.seq AS s, (k.seq * 7919 + d.seq * 31 + s.seq * 101) % 1000 AS v,
                         NOW() - INTERVAL 86390 SECOND + INTERVAL (k.seq * {step} + (d.seq % 200)) SECOND AS at
                  FROM {devices} d, seq_1_to_{SENSORS} s, {times} k) t""")
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
    from meccano.fleet.history import record_history
    from meccano.fleet.statistics import update_statistics
    from meccano.settings.config import load_settings

    settings = load_settings()
    db = _iotdb(uri)
    started = time.monotonic()
    if which == "statistics":
        run = update_statistics(db, settings)
        detail = f"{run.written} rows written, {run.hours_aggregated} hours aggregated"
    else:
        counts = record_history(db, settings)
        detail = json.dumps(counts)
    seconds = time.monotonic() - started
    db.dispose()
    return {"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "detail": detail}


def explain(uri: str) -> list[dict]:
    """Plan of one hour's aggregation (the steady state runs 2-3 of them)."""
    from datetime import timedelta

    from meccano.fleet.statistics import _SQUARE, RANGE_SQL, floor_hour
    from meccano.iotdb.clock import db_now

    db = _iotdb(uri)
    now = db_now(db)
    hour = floor_hour(now - timedelta(hours=1))
    plan = db.query("EXPLAIN " + RANGE_SQL.format(square=_SQUARE["mysql"]), lo=hour, hi=hour + timedelta(hours=1),
                    until=now)
    db.dispose()
    return plan


def _measure_once(uri: str, which: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--measure", which], check=True, capture_output=True,
                          text=True, env={**os.environ, "PYTHONWARNINGS": "ignore", "MECCANO_BENCH_URI": uri})
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_plugins(uri: str, rows: int, runs: int) -> list[tuple]:
    first = _measure_once(uri, "statistics")  # empty DeviceStatisticsHour: back-fills the whole window
    print(f"  statistics, first run (back-fill): {first}", flush=True)
    out = [(rows, "statistics", "first run (back-fill)", first["seconds"], first["seconds"], first["peak_mb"])]
    for which, variant in (("statistics", "steady state"), ("history", "")):
        measured = []
        for _ in range(runs):
            measured.append(_measure_once(uri, which))
            print(f"  {which} {variant}: {measured[-1]}", flush=True)
        out.append((rows, which, variant, statistics.median(r["seconds"] for r in measured),
                    max(r["seconds"] for r in measured), max(r["peak_mb"] for r in measured)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--layout", choices=["time", "device"], default="time",
                        help="Facts insert order: by time like the gateway (default), or 250 devices' day at a time")
    parser.add_argument("--measure", choices=["statistics", "history"], help=argparse.SUPPRESS)
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
            rate = generate(uri, rows, args.layout)
            actual = int(server.sql("SELECT COUNT(*) FROM Facts", name).strip())
            print(f"generated {actual:,} Facts rows at {rate:,.0f} rows/s", flush=True)
            for line in explain(uri):
                print("  plan:", {k: line[k] for k in ("table", "type", "key", "rows", "Extra")}, flush=True)
            results += run_plugins(uri, actual, args.runs)
            server.sql(f"DROP DATABASE `{name}`")
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)  # the 10 M-row data directory is several GB
    print("\n| Facts rows | plugin | run | median s | max s | peak RSS MB |\n|---:|---|---|---:|---:|---:|")
    for rows, which, variant, med, worst, peak in results:
        plugin = "sensorStatistics" if which == "statistics" else "historyStatus"
        print(f"| {rows:,} | {plugin} | {variant} | {med:.2f} | {worst:.2f} | {peak:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
