"""Helpers shared by the export tests (no tests here): seed Facts, read the target back."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

DAYS = ("2024-03-01", "2024-03-02", "2024-03-03")
ROWS_PER_DAY = 1200
RECENT_DAY = "2024-03-09"  # younger than EXPORT_DAYS=1 at a run on 2024-03-10 02:00: never exported
SMALL_CONFIG = """default:
  export:
    partBytes: 20000
    purgeChunkRows: 300
    maxDaysPerRun: 10
"""


def fact(ts: datetime, i: int) -> dict:
    channel = 'ch,"quoted"' if i % 97 == 0 else f"channel{i % 5}"
    return {"channel": channel, "year": ts.year, "month": ts.month, "day": ts.day, "week_day": ts.weekday(),
            "hour": ts.hour, "minute": ts.minute, "second": ts.second, "device_group": f"g{i % 3}",
            "device": f"aa:{i % 50:02d}", "sensor": i % 4, "data": i, "creationDate": ts}


def day_facts(day: str, n: int = ROWS_PER_DAY, seed: int = 1, offset: int = 0) -> list[dict]:
    rnd = random.Random(f"{day}-{seed}")
    base = datetime.fromisoformat(day)
    return [fact(base + timedelta(seconds=rnd.randrange(86400)), offset + i) for i in range(n)]


def insert_facts(db, rows: list[dict]) -> None:
    from sqlalchemy import text

    cols = list(rows[0])
    sql = text(f"INSERT INTO Facts ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})")
    with db.begin() as con:
        con.execute(sql, rows)


def as_tuple(row: dict) -> tuple[str, ...]:
    out = []
    for key in ("channel", "year", "month", "day", "week_day", "hour", "minute", "second", "device_group",
                "device", "sensor", "data", "creationDate"):
        value = row[key]
        out.append(value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else str(value))
    return tuple(out)


def db_rows(db) -> Counter:
    rows = db.query("SELECT * FROM Facts")
    return Counter(as_tuple(r) for r in rows)


class TargetReader:
    """Reads every day folder of a table back (S3 through boto3, or a local folder) and checks it."""

    def __init__(self, client=None, bucket: str = "", root: Path | None = None, prefix: str = "facts") -> None:
        self.client, self.bucket, self.root, self.prefix = client, bucket, root, prefix

    def keys(self) -> list[str]:
        if self.client is not None:
            out, token = [], None
            while True:
                kw = {"Bucket": self.bucket, "Prefix": self.prefix + "/"}
                if token:
                    kw["ContinuationToken"] = token
                page = self.client.list_objects_v2(**kw)
                out += [o["Key"] for o in page.get("Contents", [])]
                token = page.get("NextContinuationToken")
                if not token:
                    return sorted(out)
        base = self.root
        assert base is not None
        return sorted(str(p.relative_to(base)) for p in (base / self.prefix).rglob("*") if p.is_file())

    def read(self, key: str) -> bytes:
        if self.client is not None:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        assert self.root is not None
        return (self.root / key).read_bytes()

    def manifests(self) -> dict[str, dict]:
        return {k.rsplit("/", 1)[0]: json.loads(self.read(k)) for k in self.keys() if k.endswith("manifest.json")}

    def rows(self) -> Counter:
        """All exported rows; asserts every folder holds exactly its manifest's parts, checksums match."""
        found: Counter = Counter()
        keys = set(self.keys())
        for folder, manifest in self.manifests().items():
            listed = {f"{folder}/{p['key']}" for p in manifest["parts"]} | {f"{folder}/manifest.json"}
            assert {k for k in keys if k.startswith(folder + "/")} == listed
            total = 0
            for part in manifest["parts"]:
                data = self.read(f"{folder}/{part['key']}")
                assert len(data) == part["bytes"]
                assert hashlib.sha256(data).hexdigest() == part["sha256"]
                rows = parquet_text_rows(data) if manifest["format"] == "parquet" else \
                    list(csv.reader(io.StringIO(gzip.decompress(data).decode())))
                assert len(rows) == part["rows"]
                total += len(rows)
                found.update(tuple(r) for r in rows)
            assert total == manifest["rows"]
        return found


def parquet_text_rows(data: bytes) -> list[tuple[str, ...]]:
    """A Parquet part's rows as the CSV text of the same values (datetimes to the second, NULL empty)."""
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return [tuple("" if v is None else v.strftime("%Y-%m-%d %H:%M:%S") if isinstance(v, datetime) else str(v)
                  for v in row) for row in zip(*columns, strict=True)]


def configure_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_format: str = "csv") -> Path:
    """Small parts and purge chunks, local staging under tmp_path; returns the staging folder."""
    cfg = tmp_path / "config.yml"
    cfg.write_text(SMALL_CONFIG + f"    format: {file_format}\n")
    monkeypatch.setenv("MECCANO_CONFIG", str(cfg))
    local = tmp_path / "local"
    local.mkdir()
    monkeypatch.setenv("EXPORT_LOCALDIRECTORY", str(local))
    monkeypatch.setenv("EXPORT_DAYS", "1")
    for var in ("EXPORT_BUCKET", "EXPORT_REMOTEDIRECTORY", "EXPORT_PURGE", "EXPORT_ENABLED"):
        monkeypatch.delenv(var, raising=False)
    return local


_bucket_counter = iter(range(100_000))


SHARED_BUCKET = "meccano-export-tests"


def new_bucket(s3_server, monkeypatch: pytest.MonkeyPatch, remote: str = "iot") -> tuple[str, str]:
    """One bucket per session (SeaweedFS gives each bucket its own volumes: few fit), a fresh
    remote directory per test. Returns (bucket, remote directory)."""
    client = s3_server.client()
    try:
        client.create_bucket(Bucket=SHARED_BUCKET)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    except client.exceptions.BucketAlreadyExists:
        pass
    root = f"{remote}-{next(_bucket_counter)}-{random.randrange(10**6)}"
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.connection_uri())
    monkeypatch.setenv("EXPORT_BUCKET", SHARED_BUCKET)
    monkeypatch.setenv("EXPORT_REMOTEDIRECTORY", root + "/")
    return SHARED_BUCKET, root


def run_chain(settings, db, conf: dict | None = None, run_id: str = "manual", when: datetime | None = None) -> dict:
    """The export DAG's tasks in order in this process, each fed only what XCom would carry (JSON)."""
    from meccano.export import chain

    def xcom(value: dict) -> dict:
        return json.loads(json.dumps(value))

    planned = xcom(chain.plan_step(settings, db, conf or {}, run_id, when))
    exported = xcom(chain.export_step(settings, db, planned))
    chain.verify_step(settings, db, planned)
    purged = xcom(chain.purge_step(settings, db, planned))
    return {"partitions": len(planned["partitions"]), "rows": sum(e["rows"] for e in exported["partitions"]),
            **purged}


class WorkerDied(BaseException):
    """Stands for the worker being killed (not an Exception: nothing in the product handles it)."""


def seed_facts(db, recent_rows: int) -> tuple[list[dict], list[dict]]:
    """Inserts the old days (``DAYS``, ``ROWS_PER_DAY`` each) and ``recent_rows`` rows of ``RECENT_DAY``;
    returns (old rows, recent rows)."""
    old = [r for d in DAYS for r in day_facts(d)]
    recent = day_facts(RECENT_DAY, recent_rows)
    insert_facts(db, old + recent)
    return old, recent


@dataclass
class Seeded:
    """An export configured to a fresh S3 folder (small parts, EXPORT_DAYS=1) over seeded Facts."""

    db: Any  # the IOTDB (meccano.iotdb.db.Iotdb)
    local: Path  # EXPORT_LOCALDIRECTORY
    reader: TargetReader  # the target's ``facts`` folder
    old: list[dict]  # the rows of DAYS: exported and purged by a run on 2024-03-10
    recent: list[dict]  # the rows of RECENT_DAY: they stay

    @property
    def old_rows(self) -> Counter:
        return Counter(as_tuple(r) for r in self.old)

    @property
    def recent_rows(self) -> Counter:
        return Counter(as_tuple(r) for r in self.recent)

    def until_verify(self, run_id: str, when: datetime) -> dict:
        """The plan, export and verify tasks in this process, as a run that dies before its purge;
        returns the plan."""
        from meccano.export import chain
        from meccano.settings.config import load_settings

        settings = load_settings()
        planned = chain.plan_step(settings, self.db, {}, run_id, when)
        chain.export_step(settings, self.db, planned)
        chain.verify_step(settings, self.db, planned)
        return planned


def seed_export(db, s3_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_format: str = "csv",
                recent_rows: int = 20) -> Seeded:
    """``configure_export`` + ``new_bucket`` + ``seed_facts``: the starting point of the export's
    failure, worker and partition tests."""
    local = configure_export(tmp_path, monkeypatch, file_format)
    bucket, remote = new_bucket(s3_server, monkeypatch)
    old, recent = seed_facts(db, recent_rows)
    return Seeded(db, local, TargetReader(s3_server.client(), bucket, prefix=f"{remote}/facts"), old, recent)


def ledger_entries(db, table: str | None = None) -> list:
    """Every ``ExportLedger`` entry (of ``table``), by table and day."""
    from meccano.export.ledger import Ledger

    sql = "SELECT tableName, day FROM ExportLedger" + (" WHERE tableName = :t" if table else "") + \
          " ORDER BY tableName, day"
    ledger = Ledger(db)
    entries = [ledger.get(r["tableName"], r["day"]) for r in db.query(sql, **({"t": table} if table else {}))]
    return [e for e in entries if e]


def build_chunks(histogram, start: str, end: str, chunk_rows: int) -> list:
    """The plain reference of ``DaySeconds.chunks``: contiguous ranges over ``[start, end)`` of at most
    ``chunk_rows`` rows from ``(timestamp text, rows)`` pairs (one second is never split)."""
    from meccano.export.model import Chunk

    chunks = []
    lower, acc = start, 0
    for ts, n in histogram:
        if acc and acc + n > chunk_rows:
            chunks.append(Chunk(lower, ts, acc))
            lower, acc = ts, 0
        acc += n
    chunks.append(Chunk(lower, end, acc))
    return chunks


def busy_seconds(day) -> list[tuple[str, int]]:
    """``('YYYY-MM-DD HH:MM:SS', rows)`` of each second of a ``DaySeconds`` holding rows, ascending."""
    return [(f"{day.day} {s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}", n) for s, n in enumerate(day.counts) if n]


def write_days_to(db, days: list, options, folder_of, run_id: str = "run-1", log=None) -> list:
    """``write.write_days`` of one run with each day's part files in ``folder_of(day)``."""
    import logging

    from meccano.export import write
    from meccano.export.context import RunContext
    from meccano.settings.config import load_settings

    class Run(RunContext):
        def local(self, day) -> Path:
            return folder_of(day)

    return write.write_days(Run(load_settings(), db, options, run_id, log or logging.getLogger("test")), days)


NOW = datetime(2024, 3, 10, 2, 0, 0)


def seed(db) -> tuple[Counter, Counter]:
    """Three old days plus recent rows; returns (old rows, recent rows)."""
    old, recent = seed_facts(db, recent_rows=50)  # the recent rows are younger than EXPORT_DAYS=1 at NOW: stay
    return Counter(as_tuple(r) for r in old), Counter(as_tuple(r) for r in recent)
