"""The data path under faults (issue 36): S3 answering 503 SlowDown or resetting connections during a part's
``PUT``, a multipart upload, verify's read-back and the manifest's write; S3 too slow for the task's time limit;
SeaweedFS restarted mid-upload; the IOTDB connection killed by the server (``KILL CONNECTION``) or the server
restarted during the export's stream and during a purge chunk; the staging disk full.

Real MariaDB and SeaweedFS, with :class:`tests.support.faultproxy.FaultProxy` between them and the export. For
each fault: the run fails (or the client's retry absorbs it) with a message naming the cause, without a secret
or a chained trace; once the fault is gone a re-run completes, every row is in S3 exactly once, no row was purged
unverified, the ledger is consistent, no staging file and no incomplete multipart upload is left.

``MECCANO_FAULT_FIGURES=FILE`` appends each case's time to recovery (the re-run after the fault ends) to FILE
as JSON lines: the figures of docs/ha.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from meccano.errors import ExportError, StorageError
from meccano.export import chain
from meccano.export.ledger import Ledger
from meccano.export.model import Part
from meccano.settings.config import load_settings
from tests.services.mariadb import PASSWORD
from tests.services.s3 import SECRET_KEY
from tests.support.export import DAYS, Seeded, db_rows, ledger_entries, run_chain, seed_export
from tests.support.faultproxy import FaultProxy, when

pytestmark = pytest.mark.services
NOW = datetime(2024, 3, 10, 2, 0, 0)
MIB = 1024 * 1024
_ids = count()


@dataclass
class Faulty(Seeded):
    """A seeded export whose S3 and IOTDB traffic goes through fault proxies (``db``: the IOTDB through
    ``mysql``; ``direct``: the IOTDB itself, for the test's own checks)."""

    direct: Any
    s3: FaultProxy
    mysql: FaultProxy
    bucket: str
    prefix: str
    database: str


@pytest.fixture
def faulty(iotdb, iotdb_env, mariadb, s3_server, tmp_path, monkeypatch) -> Any:
    seeded = seed_export(iotdb, s3_server, tmp_path, monkeypatch)
    s3, mysql = FaultProxy(s3_server.port), FaultProxy(mariadb.port)
    conn = json.loads(s3_server.connection_uri())
    conn["extra"]["endpoint_url"] = f"http://127.0.0.1:{s3.port}"
    conn["extra"]["config_kwargs"].update({"connect_timeout": 3, "read_timeout": 5})
    conn_id = f"aws_faults_{os.getpid()}_{next(_ids)}"  # Airflow keeps one filesystem per connection id
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    monkeypatch.setenv("MECCANO_AWS_CONN_ID", conn_id)
    uri = iotdb_env["AIRFLOW_CONN_MECCANO_IOTDB"]
    monkeypatch.setenv("AIRFLOW_CONN_MECCANO_IOTDB", uri.replace(f":{mariadb.port}/", f":{mysql.port}/"))
    from meccano.iotdb.db import Iotdb

    db = Iotdb.from_settings(load_settings())
    reader = seeded.reader
    yield Faulty(db=db, local=seeded.local, reader=reader, old=seeded.old, recent=seeded.recent, direct=iotdb, s3=s3,
                 mysql=mysql, bucket=reader.bucket, prefix=reader.prefix.rsplit("/", 1)[0],
                 database=uri.rsplit("/", 1)[1])
    s3.close()
    mysql.close()
    db.dispose()


def incomplete_uploads(s3_server, f: Faulty) -> list[str]:
    page = s3_server.client().list_multipart_uploads(Bucket=f.bucket, Prefix=f.prefix + "/")
    return [u["Key"] for u in page.get("Uploads", []) or []]


def staged(f: Faulty) -> list[Path]:
    return [p for p in f.local.rglob("*") if p.is_file() and p.name != "filler"]


def failing(f: Faulty, match: str, run_id: str = "faulty", kinds: Any = ExportError) -> str:
    """The run fails with a message naming the cause: no secret, no chained trace, nothing left staged."""
    with pytest.raises(kinds, match=match) as err:
        run_chain(load_settings(), f.db, run_id=run_id, when=NOW)
    message = str(err.value)
    for secret in (SECRET_KEY, PASSWORD):
        assert secret not in message
    assert err.value.__cause__ is None and "Traceback" not in message
    assert not staged(f)
    return message


def recovers(f: Faulty, s3_server, case: str, run_id: str = "rerun") -> None:
    """After the fault: a re-run completes and everything is settled; its time goes to the figures."""
    f.s3.clear()
    f.mysql.clear()
    started = time.perf_counter()
    run_chain(load_settings(), f.db, run_id=run_id, when=NOW)
    seconds = time.perf_counter() - started
    assert f.reader.rows() == f.old_rows  # every row in S3 exactly once
    assert db_rows(f.direct) == f.recent_rows  # the exported days purged, the recent day kept
    assert {e.state for e in ledger_entries(f.direct)} == {"purged"}
    assert all(e.purged_rows == e.rows for e in ledger_entries(f.direct))
    assert not staged(f)
    assert not incomplete_uploads(s3_server, f)
    figures = os.environ.get("MECCANO_FAULT_FIGURES")
    if figures:
        with open(figures, "a") as out:
            out.write(json.dumps({"case": case, "recovery_seconds": round(seconds, 2)}) + "\n")


def nothing_purged(f: Faulty) -> None:
    assert db_rows(f.direct) == f.old_rows + f.recent_rows


def purged_only_what_s3_holds(f: Faulty) -> None:
    """Every row gone from the database is in S3 and counted by the ledger as purged."""
    gone = f.old_rows + f.recent_rows - db_rows(f.direct)
    assert not gone - f.reader.rows()
    assert sum(e.purged_rows for e in ledger_entries(f.direct)) == sum(gone.values())


# --- S3 -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "method", "pattern", "action", "expected", "no_checksums"), [
    ("503 SlowDown on every PUT of a part", "PUT", "/part-", "503", "overloaded or failing", False),
    ("connection reset on every PUT of a part", "PUT", "/part-", "reset", "cannot reach the S3 endpoint", False),
    ("a part's bytes altered on their way to S3", "PUT", "/part-", "corrupt", "did not match the SHA-256", False),
    ("503 SlowDown on the manifest's PUT", "PUT", "/manifest.json", "503", "overloaded or failing", False),
    ("connection reset on the manifest's PUT", "PUT", "/manifest.json", "reset", "cannot reach the S3", False),
    ("503 SlowDown on verify's read-back (store without checksums)", "GET", "/part-", "503", "overloaded", True),
    ("connection reset on verify's read-back (store without checksums)", "GET", "/part-", "reset", "cannot reach",
     True),
])
def test_s3_fault_fails_the_run_then_a_rerun_completes(faulty, s3_server, case, method, pattern, action, expected,
                                                        no_checksums):
    faulty.s3.strip_checksums = no_checksums
    faulty.s3.on_request(method, pattern, action, times=None)
    failing(faulty, expected, kinds=StorageError)
    nothing_purged(faulty)
    assert faulty.s3.fired
    recovers(faulty, s3_server, case)


def test_single_s3_faults_are_absorbed_by_the_clients_retry(faulty, s3_server):
    faulty.s3.on_request("PUT", "/part-", "503", nth=2)
    faulty.s3.on_request("PUT", "/manifest.json", "reset")
    reads = faulty.s3.on_request("GET", "/part-", "503", nth=10**9)  # never fires: counts the read-backs
    run_chain(load_settings(), faulty.db, run_id="retried", when=NOW)
    assert len(faulty.s3.fired) == 2
    assert reads.seen == 0  # SeaweedFS keeps S3's checksums: verify asked for them, read nothing back
    recovers(faulty, s3_server, "a single 503 or reset (client retry)", run_id="again")


def test_verify_reads_back_only_where_the_store_keeps_no_checksums(faulty, s3_server):
    faulty.s3.strip_checksums = True  # the same server, seen as a store without checksums
    reads = faulty.s3.on_request("GET", "/part-", "503", nth=10**9)
    run_chain(load_settings(), faulty.db, run_id="no-checksums", when=NOW)
    parts = [p for e in ledger_entries(faulty.direct) for p in e.manifest.parts]
    assert parts and all(p.checksum is None for p in parts)
    assert reads.seen == len(parts)  # every part read back and hashed
    assert faulty.reader.rows() == faulty.old_rows


def test_s3_slower_than_the_task_time_limit(faulty, s3_server):
    from airflow.sdk.exceptions import AirflowTaskTimeout
    from airflow.sdk.execution_time.timeout import timeout

    settings = load_settings()
    planned = chain.plan_step(settings, faulty.db, {}, "slow", NOW)
    faulty.s3.throttle(up=1024)  # about 1 kB/s towards S3: each part takes many seconds, far past the limit
    with pytest.raises(AirflowTaskTimeout), timeout(2):
        chain.export_step(settings, faulty.db, planned)
    assert not staged(faulty)
    nothing_purged(faulty)
    recovers(faulty, s3_server, "S3 slower than the task's time limit")


def test_seaweedfs_restarted_mid_upload(faulty, s3_server, monkeypatch):
    from meccano.export import target

    real = target.put_part
    calls = []

    def stop_first(*args: Any) -> Part:
        if not calls:
            s3_server.stop()
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(target, "put_part", stop_first)
    try:
        # the gateway gone (refused), or still answering while its storage stops (500 InternalError)
        failing(faulty, "cannot reach the S3 endpoint|overloaded or failing", kinds=StorageError)
    finally:
        s3_server.start_again()
    monkeypatch.setattr(target, "put_part", real)
    nothing_purged(faulty)
    recovers(faulty, s3_server, "SeaweedFS restarted during the upload")


# --- multipart uploads ------------------------------------------------------------------------------------------
@pytest.fixture
def big_part(faulty, tmp_path) -> tuple[Path, Part]:
    """A part file of three multipart chunks (5 MiB each, the smallest S3 allows), incompressible."""
    import hashlib

    path = tmp_path / "part-00000.csv.gz"
    data = os.urandom(12 * MIB)
    path.write_bytes(data)
    return path, Part(path.name, 1, len(data), hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize(("case", "method", "pattern", "action", "nth", "expected"), [
    ("503 SlowDown on an UploadPart", "PUT", r"partNumber=2", "503", 1, "overloaded or failing"),
    ("connection reset on an UploadPart", "PUT", r"partNumber=3", "reset", 1, "cannot reach the S3 endpoint"),
    ("503 SlowDown on CompleteMultipartUpload", "POST", r"uploadId=", "503", 1, "overloaded or failing"),
])
def test_a_failed_multipart_upload_is_aborted(faulty, s3_server, big_part, monkeypatch, case, method, pattern,
                                              action, nth, expected):
    from meccano.export.target import Target, put_part

    target = Target(load_settings())
    assert target.multipart[0] == 8 * MIB
    monkeypatch.setattr(Target, "multipart", property(lambda self: (5 * MIB, 2)))
    local, part = big_part
    remote = target.root / "facts" / "year=2024" / "month=03" / "day=01" / part.key
    faulty.s3.on_request(method, pattern, action, nth=nth, times=None)
    with pytest.raises(StorageError, match=expected) as err:
        target.guarded("upload", partial(put_part, target, local, remote, part))
    assert SECRET_KEY not in str(err.value)
    assert faulty.s3.fired
    assert not incomplete_uploads(s3_server, faulty)  # aborted, not left behind
    faulty.s3.clear()
    stored = target.guarded("upload", partial(put_part, target, local, remote, part))
    assert stored.checksum is not None and stored.checksum.endswith("-3")  # S3's composite of 3 chunks
    assert target.s3 is not None and target.s3.stored(remote.key) == (part.bytes, stored.checksum)


def test_a_multipart_upload_past_the_time_limit_is_aborted(faulty, s3_server, big_part, monkeypatch):
    from airflow.sdk.exceptions import AirflowTaskTimeout
    from airflow.sdk.execution_time.timeout import timeout

    from meccano.export.target import Target, put_part

    target = Target(load_settings())
    monkeypatch.setattr(Target, "multipart", property(lambda self: (5 * MIB, 2)))
    local, part = big_part
    remote = target.root / "facts" / "year=2024" / "month=03" / "day=01" / part.key
    faulty.s3.throttle(up=2 * MIB)  # 12 MiB: about 6 s
    with pytest.raises(AirflowTaskTimeout), timeout(1.5):
        put_part(target, local, remote, part)
    assert not incomplete_uploads(s3_server, faulty)


def test_the_multipart_upload_of_an_attempt_that_died_is_swept(faulty, s3_server, caplog):
    import logging

    caplog.set_level(logging.INFO)
    key = f"{faulty.prefix}/facts/year=2024/month=03/day={DAYS[0][-2:]}/part-00000.csv.gz"
    s3_server.client().create_multipart_upload(Bucket=faulty.bucket, Key=key)  # a worker killed mid-upload
    assert incomplete_uploads(s3_server, faulty) == [key]
    recovers(faulty, s3_server, "incomplete multipart upload of a killed worker (swept)")
    assert "aborted 1 incomplete multipart upload" in caplog.text


# --- parts streamed while they are written -------------------------------------------------------------------
STREAM_KEY_DAY = "year=2024/month=03/day=01"


@pytest.fixture
def streamed(faulty, tmp_path, monkeypatch) -> Any:
    """A target whose parts stream in chunks of 5 MiB (the smallest S3 allows), and one part file to stream."""
    from meccano.export.target import Target, key_of

    monkeypatch.setattr(Target, "multipart", property(lambda self: (5 * MIB, 2)))
    target = Target(load_settings())
    path = tmp_path / "part-00000.csv.gz"
    key = key_of(target.root / "facts" / STREAM_KEY_DAY / path.name)
    return target, path, key


def _written(streams: Any, path: Path, key: str, data: bytes, then: Any = None) -> Any:
    """``data`` written to ``path`` in blocks of 1 MiB, as the export's file thread does, streamed to ``key``;
    ``then()`` runs before the file is complete."""
    from meccano.export.partfile import HashingFile

    file = HashingFile(path, streams.watch(key, path))
    for start in range(0, len(data), MIB):
        file.write(data[start:start + MIB])
    if then is not None:
        then()
    file.complete()
    return file


def test_a_part_is_uploaded_while_it_is_written(faulty, s3_server, streamed):
    target, path, key = streamed
    data = os.urandom(12 * MIB)  # incompressible: three chunks of 5, 5 and 2 MiB
    parts = faulty.s3.on_request("PUT", r"partNumber=", "503", nth=10**9)  # never fires: counts the UploadParts
    streams = target.streams(target.preflight)
    _written(streams, path, key, data,
             then=lambda: when(lambda: parts.seen == 2, timeout=30))  # two chunks up before the file is complete
    assert streams.result(key).endswith("-3")  # S3's composite checksum of the three chunks, as sent
    streams.abort()  # the export's cleanup: nothing left to abort
    assert s3_server.client().get_object(Bucket=faulty.bucket, Key=key)["Body"].read() == data
    assert not incomplete_uploads(s3_server, faulty)


@pytest.mark.parametrize(("case", "method", "pattern", "action", "expected"), [
    ("503 SlowDown on a streamed UploadPart", "PUT", r"partNumber=2", "503", "overloaded or failing"),
    ("connection reset on a streamed UploadPart", "PUT", r"partNumber=1", "reset", "cannot reach the S3 endpoint"),
    ("503 SlowDown completing a streamed upload", "POST", r"uploadId=", "503", "overloaded or failing"),
    ("a streamed chunk altered on its way to S3", "PUT", r"partNumber=2", "corrupt", "did not match the SHA-256"),
])
def test_a_failed_streamed_upload_is_aborted(faulty, s3_server, streamed, case, method, pattern, action, expected):
    target, path, key = streamed
    faulty.s3.on_request(method, pattern, action, times=None)
    streams = target.streams(target.preflight)
    _written(streams, path, key, os.urandom(12 * MIB))
    with pytest.raises(StorageError, match=expected) as err:
        target.guarded("upload", partial(streams.result, key))
    assert SECRET_KEY not in str(err.value) and faulty.s3.fired
    streams.abort()
    assert not incomplete_uploads(s3_server, faulty)  # aborted when it failed, not left behind


def test_a_part_given_up_mid_stream_leaves_no_upload(faulty, s3_server, streamed):
    """The write fails (a full disk, the IOTDB gone): the part writer cancels the part's upload."""
    from meccano.export.partfile import HashingFile

    target, path, key = streamed
    parts = faulty.s3.on_request("PUT", r"partNumber=", "503", nth=10**9)
    streams = target.streams(target.preflight)
    watcher = streams.watch(key, path)
    file = HashingFile(path, watcher)
    file.write(os.urandom(11 * MIB))
    when(lambda: parts.seen == 2 and bool(incomplete_uploads(s3_server, faulty)))
    watcher.cancel()
    file.close()
    when(lambda: not incomplete_uploads(s3_server, faulty))
    assert not any(o["Key"] == key for o in s3_server.client().list_objects_v2(
        Bucket=faulty.bucket, Prefix=faulty.prefix).get("Contents", []))
    # the same part written again (the exact re-read after an ambiguous value): the given-up one failed nothing
    path.unlink()
    data = os.urandom(6 * MIB)
    _written(streams, path, key, data)
    streams.check()
    assert streams.result(key).endswith("-2")
    streams.abort()
    assert s3_server.client().get_object(Bucket=faulty.bucket, Key=key)["Body"].read() == data
    assert not incomplete_uploads(s3_server, faulty)


def test_a_part_given_up_while_its_chunk_is_in_flight_fails_nothing_else(faulty, s3_server, streamed, monkeypatch):
    """The part is given up while the sender is sending one of its chunks, which then fails (its upload was
    aborted under it): that failure is the given-up part's alone, the other parts go on."""
    from meccano.export.partfile import HashingFile
    from meccano.export.s3objects import S3Objects

    target, path, key = streamed
    streams = target.streams(target.preflight)
    watcher = streams.watch(key, path)
    real_send = S3Objects.send_chunk

    def given_up_in_flight(self: Any, *args: Any) -> Any:
        watcher.cancel()  # the write failed meanwhile: the part writer gives the part up
        raise StorageError("NoSuchUpload: the upload was aborted")

    monkeypatch.setattr(S3Objects, "send_chunk", given_up_in_flight)
    file = HashingFile(path, watcher)
    file.write(os.urandom(6 * MIB))
    when(lambda: watcher.done.is_set())
    file.close()
    monkeypatch.setattr(S3Objects, "send_chunk", real_send)
    streams.check()  # no failure of the streams
    other = path.with_name("part-00001.csv.gz")
    other_key = key.replace(path.name, other.name)
    data = os.urandom(6 * MIB)
    _written(streams, other, other_key, data)
    assert streams.result(other_key).endswith("-2")
    streams.abort()
    assert s3_server.client().get_object(Bucket=faulty.bucket, Key=other_key)["Body"].read() == data
    assert not incomplete_uploads(s3_server, faulty)


def test_a_streamed_upload_past_the_time_limit_is_aborted(faulty, s3_server, streamed):
    from airflow.sdk.exceptions import AirflowTaskTimeout
    from airflow.sdk.execution_time.timeout import timeout

    target, path, key = streamed
    faulty.s3.throttle(up=2 * MIB)  # 12 MiB: about 6 s
    streams = target.streams(target.preflight)
    try:
        with pytest.raises(AirflowTaskTimeout), timeout(1.5):
            _written(streams, path, key, os.urandom(12 * MIB))
            streams.result(key)
    finally:
        streams.abort()  # what the export task's cleanup does
    faulty.s3.throttle()
    when(lambda: not incomplete_uploads(s3_server, faulty))  # an UploadPart still in flight ends refused


def test_a_target_that_fails_its_preparation_stops_the_write(faulty, s3_server, monkeypatch):
    """The target is prepared (bucket, unknown days, sweep) on the sender thread, which starts with the first part
    file, while the rows are read; its failure stops the write at the next block and is the run's error."""
    from meccano.export import formats
    from meccano.export import write as write_module

    failed = threading.Event()
    real_prepare, real_write = chain.prepare_target, formats.PartWriter.write
    written: list[int] = []

    def prepare(run: Any) -> None:
        try:
            real_prepare(run)
        finally:
            failed.set()

    def write(self: Any, data: bytes, rows: int) -> None:
        real_write(self, data, rows)  # the first block makes the first part file: the sender starts
        written.append(rows)
        assert failed.wait(30)  # the next block comes once the preparation has failed

    monkeypatch.setattr(chain, "prepare_target", prepare)
    monkeypatch.setattr(formats.PartWriter, "write", write)
    monkeypatch.setattr(write_module, "batch_rows", lambda part_bytes: 100)  # many blocks a day
    faulty.s3.on_request("HEAD", "", "503", times=None)  # the bucket check: S3 overloaded
    failing(faulty, "overloaded or failing", kinds=StorageError)
    assert len(written) == 1  # stopped at the block after the failure
    nothing_purged(faulty)
    monkeypatch.setattr(chain, "prepare_target", real_prepare)
    monkeypatch.setattr(formats.PartWriter, "write", real_write)
    recovers(faulty, s3_server, "S3 failing the bucket check")


# --- the IOTDB --------------------------------------------------------------------------------------------------
def _processes(mariadb, f: Faulty, info: str, min_ms: int) -> list[str]:
    out = mariadb.sql(f"SELECT ID FROM information_schema.PROCESSLIST WHERE DB = '{f.database}' "
                      f"AND INFO LIKE '{info}' AND TIME_MS >= {min_ms}")
    return out.split()


def _kill_when(mariadb, f: Faulty, info: str, min_ms: int, then: Any = None) -> threading.Thread:
    """In the background: once a statement like ``info`` has run ``min_ms``, kill its connection (server side)
    and call ``then``."""
    def run() -> None:
        with suppress(AssertionError):
            when(lambda: bool(_processes(mariadb, f, info, min_ms)), timeout=30)
            for pid in _processes(mariadb, f, info, 0):
                with suppress(subprocess.CalledProcessError):
                    mariadb.sql(f"KILL CONNECTION {pid}")
            if then is not None:
                then()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("fault", ["KILL CONNECTION", "server restart"])
def test_iotdb_lost_during_the_export_stream(faulty, mariadb, s3_server, monkeypatch, fault):
    from meccano.export.context import Progress

    real_add = Progress.add
    restarts: list[threading.Thread] = []

    def fault_after_the_first_block(self: Progress, rows: int) -> None:
        real_add(self, rows)
        if self.label.startswith("export") and not faulty.mysql.fired:
            if fault == "KILL CONNECTION":  # the server kills the export's connection
                for pid in mariadb.sql(f"SELECT ID FROM information_schema.PROCESSLIST WHERE DB = '{faulty.database}' "
                                       f"AND USER = 'meccano'").split():
                    with suppress(subprocess.CalledProcessError):
                        mariadb.sql(f"KILL CONNECTION {pid}")
            else:
                restarts.append(threading.Thread(target=mariadb.restart, daemon=True))
                restarts[0].start()
            faulty.mysql.reset()  # what the server had sent but the export not yet read is lost with it

    faulty.mysql.throttle(down=120_000)  # about 3 s of rows: the stream is still running when the fault hits
    monkeypatch.setattr(Progress, "add", fault_after_the_first_block)
    message = failing(faulty, "export: the IOTDB connection failed")
    for thread in restarts:
        thread.join(60)
    monkeypatch.setattr(Progress, "add", real_add)
    assert "nothing was purged" in message
    nothing_purged(faulty)
    assert {e.state for e in ledger_entries(faulty.direct)} <= {"exported"}  # not counted as uploaded
    recovers(faulty, s3_server, f"IOTDB {fault} during the export's stream")


def test_iotdb_connection_killed_during_a_purge_chunk(faulty, mariadb, s3_server):
    import MySQLdb

    settings = load_settings()
    planned = chain.plan_step(settings, faulty.db, {}, "killed", NOW)
    chain.export_step(settings, faulty.db, planned)
    chain.verify_step(settings, faulty.db, planned)
    chunk = Ledger(faulty.direct).get("Facts", DAYS[1]).manifest.chunks[1]
    # another session holds the rows of one chunk: that chunk's DELETE waits, and its connection is killed then
    holder = MySQLdb.connect(unix_socket=str(mariadb.socket), user="root", db=faulty.database)
    cur = holder.cursor()
    cur.execute("BEGIN")
    cur.execute("SELECT COUNT(*) FROM Facts WHERE creationDate >= %s AND creationDate < %s FOR UPDATE",
                (chunk.start, chunk.end))
    killer = _kill_when(mariadb, faulty, "DELETE FROM Facts%", 200, then=holder.rollback)
    with pytest.raises(ExportError, match=r"purge: the IOTDB connection failed.*next run finishes the purge") as err:
        chain.purge_step(settings, faulty.db, planned)
    killer.join(30)
    holder.close()
    assert PASSWORD not in str(err.value) and err.value.__cause__ is None
    purged_only_what_s3_holds(faulty)
    states = {e.day: e.state for e in ledger_entries(faulty.direct)}
    assert states[DAYS[0]] == "purged" and states[DAYS[1]] in ("verified", "purging") and states[DAYS[2]] == "verified"
    recovers(faulty, s3_server, "IOTDB KILL CONNECTION during a purge chunk")


def test_iotdb_restarted_during_the_purge(faulty, mariadb, s3_server):
    settings = load_settings()
    planned = chain.plan_step(settings, faulty.db, {}, "restarted", NOW)
    chain.export_step(settings, faulty.db, planned)
    chain.verify_step(settings, faulty.db, planned)

    def down_after_the_second(index: int) -> None:
        if index == 1:
            mariadb.stop()

    try:
        with pytest.raises(ExportError, match="purge: the IOTDB connection failed"):
            chain.purge_step(settings, faulty.db, planned, after_chunk=down_after_the_second)
    finally:
        mariadb.restart()
    purged_only_what_s3_holds(faulty)
    assert "purging" in {e.state for e in ledger_entries(faulty.direct)}
    recovers(faulty, s3_server, "IOTDB restarted between purge chunks")


# --- the staging disk -------------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(faulty) -> Any:
    """EXPORT_LOCALDIRECTORY on a 1 MiB tmpfs, nearly full."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(faulty.local)], check=True)
    filler = faulty.local / "filler"
    free = os.statvfs(faulty.local)
    filler.write_bytes(b"\0" * (free.f_bavail * free.f_frsize - 16 * 1024))
    yield filler
    subprocess.run(["umount", "-l", str(faulty.local)], check=False)


def test_staging_disk_full_mid_write(faulty, s3_server, small_disk):
    message = failing(faulty, "the staging disk is full")
    assert "EXPORT_LOCALDIRECTORY" in message
    nothing_purged(faulty)
    small_disk.unlink()  # space again
    recovers(faulty, s3_server, "staging disk full (ENOSPC)")
