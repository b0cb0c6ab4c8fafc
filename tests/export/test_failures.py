"""Failure injection: whatever fails, no row is lost, none is exported twice, and a re-run
completes. Real MariaDB and SeaweedFS S3; the secret of tests/services/s3.py never leaks."""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import datetime, timedelta

import pytest

from meccano.errors import PurgeStopped, StorageError, VerifyError
from meccano.export import chain
from meccano.export.ledger import Ledger
from meccano.settings.config import load_settings
from tests.services._proc import free_port
from tests.services.s3 import SECRET_KEY
from tests.support.export import (
    DAYS,
    WorkerDied,
    as_tuple,
    day_facts,
    db_rows,
    insert_facts,
    ledger_entries,
    run_chain,
    seed_export,
)

pytestmark = pytest.mark.services
NOW = datetime(2024, 3, 10, 2, 0, 0)


@pytest.fixture
def export_format() -> str:
    return "csv"  # tests parametrized on export_format run with Parquet parts too


@pytest.fixture
def world(iotdb, s3_server, tmp_path, monkeypatch, export_format):
    seeded = seed_export(iotdb, s3_server, tmp_path, monkeypatch, export_format)

    class World:
        db = iotdb
        work = seeded.local  # EXPORT_LOCALDIRECTORY
        reader = seeded.reader
        old_rows = seeded.old_rows
        recent_rows = seeded.recent_rows

        def settings(self):  # noqa: ANN202
            return load_settings()

        def until_verify(self, run_id: str) -> dict:
            return seeded.until_verify(run_id, NOW)

        def rerun_completes(self, run_id: str, extra: Counter | None = None) -> None:
            run_chain(load_settings(), iotdb, run_id=run_id, when=NOW)
            assert self.reader.rows() == self.old_rows + (extra or Counter())  # nothing lost, nothing twice
            assert db_rows(iotdb) == self.recent_rows
            assert {e.state for e in ledger_entries(iotdb)} == {"purged"}

    return World()


def test_worker_dies_after_upload_before_purge(world):
    world.until_verify("crashed")  # ... and the worker dies here: purge never runs
    assert db_rows(world.db) == world.old_rows + world.recent_rows
    assert world.reader.rows() == world.old_rows
    world.rerun_completes("rerun")  # re-exports the days, replacing their objects


@pytest.mark.parametrize("export_format", ["csv", "parquet"])
def test_worker_dies_after_half_the_purge_chunks(world):
    planned = world.until_verify("crashed")
    chunks = len(Ledger(world.db).get("Facts", DAYS[1]).manifest.chunks)
    assert chunks >= 4
    seen = []

    def die(index: int) -> None:
        seen.append(index)
        if len(seen) == chunks + chunks // 2:  # half-way through the second day
            raise WorkerDied

    with pytest.raises(WorkerDied):
        chain.purge_step(world.settings(), world.db, planned, after_chunk=die)
    entry = Ledger(world.db).get("Facts", DAYS[1])
    assert entry.state == "purging" and 0 < entry.purged_rows < entry.rows
    left = db_rows(world.db)
    assert sum(left.values()) == sum((world.old_rows + world.recent_rows).values()) - \
        Ledger(world.db).get("Facts", DAYS[0]).purged_rows - entry.purged_rows
    assert world.reader.rows() == world.old_rows
    world.rerun_completes("rerun")  # plans the half-purged day in reconcile mode: keeps its parts


def test_late_rows_in_an_exported_day_stop_the_purge(world):
    s = world.settings()
    planned = chain.plan_step(s, world.db, {}, "run1", NOW)
    chain.export_step(s, world.db, planned)
    late = day_facts(DAYS[1], 7, seed=99, offset=50_000)
    insert_facts(world.db, late)
    with pytest.raises(VerifyError, match="rows arrived late") as err:
        chain.verify_step(s, world.db, planned)
    assert "Facts 2024-03-02" in str(err.value) and "nothing purged" in str(err.value)
    assert db_rows(world.db) == world.old_rows + world.recent_rows + Counter(as_tuple(r) for r in late)
    world.rerun_completes("rerun", Counter(as_tuple(r) for r in late))


@pytest.mark.parametrize("export_format", ["csv", "parquet"])
def test_rows_arriving_during_the_purge_are_never_deleted_unexported(world):
    planned = world.until_verify("run1")
    chunks = Ledger(world.db).get("Facts", DAYS[0]).manifest.chunks
    late = day_facts(DAYS[0], 1, seed=7, offset=90_000)
    late[0]["creationDate"] = datetime.fromisoformat(chunks[-1].start) + timedelta(seconds=1)

    def arrive(index: int) -> None:
        if index == 0:
            insert_facts(world.db, late)

    with pytest.raises(PurgeStopped, match="late rows arrived after verification"):
        chain.purge_step(world.settings(), world.db, planned, after_chunk=arrive)
    assert db_rows(world.db)[as_tuple(late[0])] == 1  # the rolled-back chunk kept it
    world.rerun_completes("rerun", Counter(as_tuple(r) for r in late))


@pytest.mark.parametrize("export_format", ["csv", "parquet"])
def test_late_rows_after_a_day_was_purged_are_appended(world, export_format):
    run_chain(world.settings(), world.db, run_id="run1", when=NOW)
    parts_before = world.reader.manifests()[world.reader.prefix + "/year=2024/month=03/day=01"]["parts"]
    late = day_facts(DAYS[0], 5, seed=3, offset=70_000)
    insert_facts(world.db, late)
    world.rerun_completes("run2", Counter(as_tuple(r) for r in late))
    parts_after = world.reader.manifests()[world.reader.prefix + "/year=2024/month=03/day=01"]["parts"]
    assert parts_after[:len(parts_before)] == parts_before  # earlier parts untouched
    assert sum(p["rows"] for p in parts_after[len(parts_before):]) == 5
    suffix = ".parquet" if export_format == "parquet" else ".csv.gz"
    assert all(p["key"].endswith(suffix) for p in parts_after)


def test_the_same_day_run_twice(world, s3_server):
    run_chain(world.settings(), world.db, run_id="run1", when=NOW)
    client = s3_server.client()
    listing = {"Bucket": world.reader.bucket, "Prefix": world.reader.prefix}
    before = {o["Key"]: o["ETag"] for o in client.list_objects_v2(**listing)["Contents"]}
    again = run_chain(world.settings(), world.db, run_id="run2", when=NOW)
    assert again["partitions"] == 0
    after = {o["Key"]: o["ETag"] for o in client.list_objects_v2(**listing)["Contents"]}
    assert after == before
    # the same days planned twice in one go (a retried plan): the second export replaces the first
    assert world.reader.rows() == world.old_rows


def test_re_export_of_a_day_removes_its_stale_parts(world, monkeypatch):
    world.until_verify("run1")  # small parts: several per day
    monkeypatch.setenv("MECCANO_CONFIG", "/dev/null")  # default part size: one part per day
    world.rerun_completes("run2")
    assert all(len(m["parts"]) == 1 for m in world.reader.manifests().values())


def _conn(endpoint: str, secret: str) -> str:
    return json.dumps({"conn_type": "aws", "login": "meccanoTestAccessKey", "password": secret,
                       "extra": {"endpoint_url": endpoint, "region_name": "us-east-1",
                                 "config_kwargs": {"s3": {"addressing_style": "path"},
                                                   "retries": {"max_attempts": 1},
                                                   "connect_timeout": 2}}})


@pytest.mark.parametrize("failure", ["unreachable", "bad_credentials", "missing_bucket"])
def test_s3_failures_lose_nothing_and_never_show_the_secret(failure, world, s3_server, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "Wrong-Secret-Value-0123456789"
    # A broken connection under its own id: Airflow keeps one filesystem per connection id for the life
    # of a process (each task is its own process, so a task always reads the connection afresh).
    broken = f"aws_broken_{failure}"
    if failure == "unreachable":
        monkeypatch.setenv(f"AIRFLOW_CONN_{broken.upper()}", _conn(f"http://127.0.0.1:{free_port()}", SECRET_KEY))
        monkeypatch.setenv("MECCANO_AWS_CONN_ID", broken)
        expected = "cannot reach the S3 endpoint"
    elif failure == "bad_credentials":
        monkeypatch.setenv(f"AIRFLOW_CONN_{broken.upper()}", _conn(s3_server.endpoint, wrong))
        monkeypatch.setenv("MECCANO_AWS_CONN_ID", broken)
        expected = "rejected the credentials"
    else:
        monkeypatch.setenv("EXPORT_BUCKET", "no-such-bucket-here")
        expected = "does not exist"
    with pytest.raises(StorageError, match=expected) as err:
        run_chain(world.settings(), world.db, run_id="failing", when=NOW)
    assert db_rows(world.db) == world.old_rows + world.recent_rows  # nothing purged
    assert not [p for p in world.work.rglob("*") if p.is_file()]  # the failed export left no file on its worker
    for secret in (SECRET_KEY, wrong):
        assert secret not in str(err.value)
        assert secret not in caplog.text
        assert secret not in "".join(str(r.args) for r in caplog.records)
    # fixed: the good connection and bucket, and the next run completes
    monkeypatch.delenv("MECCANO_AWS_CONN_ID", raising=False)
    monkeypatch.setenv("EXPORT_BUCKET", world.reader.bucket)
    world.rerun_completes("fixed")
