"""Benchmark (diagnosis): what in the partition drop holds up the gateway's inserts?

    flock /tmp/meccano-bench.lock .venv/bin/python bench/bench_drop_stall.py
    flock /tmp/meccano-bench.lock .venv/bin/python bench/bench_drop_stall.py --innodb-flush-log-at-trx-commit=2

A throw-away MariaDB (tests/services; extra arguments are ``mariadbd`` options), a thread inserting 50 single
rows a second (autocommit) into another table, and the two statements of the drop path that touch a day's
rows after the exchange, on a table of 1,000,000 ``Facts``-like rows: the count (``SELECT COUNT(*)``) and
``DROP TABLE`` (then ``TRUNCATE`` and a drop of the emptied table, for comparison). Prints each statement's
time and the inserts that ran meanwhile (their number, slowest, how many took over 8 ms).
"""
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "include"), str(ROOT / "bench")]
import MySQLdb  # noqa: E402
from bench_export import _free_port  # noqa: E402

import tests.services._proc as proc  # noqa: E402
from tests.services.mariadb import start_mariadb  # noqa: E402

proc.free_port = _free_port

TABLE = ("(channel varchar(50), device varchar(50), sensor int, data double, "
         "creationDate timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP, KEY i1 (channel, device), KEY i2 (creationDate))")
FILL = ("INSERT INTO {name} (channel, device, sensor, data, creationDate) SELECT CONCAT('c', seq % 7), "
        "CONCAT('aa:', seq % 250), seq % 4, seq % 1000, '2024-01-01' + INTERVAL (seq % 86400) SECOND "
        "FROM seq_1_to_1000000")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="meccano-bench-drop-"))
    server = start_mariadb(work / "m", sys.argv[1:])
    server.create_database("D")

    def connect() -> MySQLdb.Connection:
        return MySQLdb.connect(unix_socket=str(server.socket), user="root", db="D", autocommit=True)

    cur = connect().cursor()
    cur.execute(f"CREATE TABLE L {TABLE}")
    lat: list[tuple[float, float]] = []
    stop = threading.Event()

    def inserts() -> None:
        ins = connect().cursor()
        nxt = time.monotonic()
        while not stop.is_set():
            wall, t = time.time(), time.perf_counter()
            ins.execute("INSERT INTO L (channel, device, sensor, data) VALUES ('live', 'aa', 1, 1)")
            lat.append((wall, (time.perf_counter() - t) * 1000))
            nxt += 0.02
            time.sleep(max(0.0, nxt - time.monotonic()))

    def phase(label: str, sql: str) -> None:
        time.sleep(2)
        w0, t = time.time(), time.perf_counter()
        cur.execute(sql)
        seconds, w1 = time.perf_counter() - t, time.time()
        time.sleep(0.3)
        win = [ms for ts, ms in lat if w0 - 0.05 <= ts <= w1 + 0.05 or (ts < w0 and ts + ms / 1000 > w0)]
        print(f"{label:16s} {seconds:6.3f} s   inserts meanwhile: {len(win)}, slowest {max(win, default=0):.1f} ms, "
              f"over 8 ms: {sum(1 for x in win if x > 8)}", flush=True)

    writer = threading.Thread(target=inserts)
    writer.start()
    try:
        for rep in range(3):
            cur.execute(f"CREATE TABLE H{rep} {TABLE}")
            cur.execute(FILL.format(name=f"H{rep}"))
            phase("COUNT(*)", f"SELECT COUNT(*) FROM H{rep}")
            phase("DROP TABLE", f"DROP TABLE H{rep}")
        for rep in range(2):
            cur.execute(f"CREATE TABLE T{rep} {TABLE}")
            cur.execute(FILL.format(name=f"T{rep}"))
            phase("TRUNCATE", f"TRUNCATE TABLE T{rep}")
            phase("DROP (emptied)", f"DROP TABLE T{rep}")
        time.sleep(1)
        every = [ms for _, ms in lat]
        print(f"all {len(every)} inserts: p99 {statistics.quantiles(every, n=100)[98]:.1f} ms, max {max(every):.1f} ms")
    finally:
        stop.set()
        writer.join(timeout=10)
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
