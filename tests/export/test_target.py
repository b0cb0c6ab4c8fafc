"""The export target's transfer and its storage errors: a part file goes up through s3fs's own multipart upload
and arrives intact; each storage failure is told by the exception's type, with the fix and without a secret.
Real SeaweedFS S3 (tests/services/s3.py) where a server is involved."""

from __future__ import annotations

import base64
import errno
import hashlib
import inspect
import json
import os
import subprocess
import sys
import textwrap
from functools import partial

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from meccano.errors import StorageError
from meccano.export.target import Fault, Target, put_file, size_and_sha256, storage_fault
from meccano.settings.config import load_settings
from tests.services._proc import free_port
from tests.services.s3 import SECRET_KEY
from tests.support.export import new_bucket

MIB = 1024 * 1024


def _config(tmp_path, monkeypatch, lines: str = "") -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text("default:\n  export:\n    tables:\n      - {table: Facts, dateColumn: creationDate}\n" + lines)
    monkeypatch.setenv("MECCANO_CONFIG", str(cfg))
    monkeypatch.setenv("EXPORT_LOCALDIRECTORY", str(tmp_path / "local"))


def _client_error(code: str, status: int, operation: str = "PutObject", message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message or code},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


def _translated(cls: type[OSError], cause: BaseException) -> OSError:
    """What s3fs raises: an OSError subclass carrying S3's message, botocore's error as its cause."""
    err = cls(str(cause))
    err.__cause__ = cause
    return err


@pytest.mark.parametrize(("exc", "local", "fault"), [
    (_client_error("403", 403, "HeadBucket", "Forbidden"), False, Fault.DENIED),
    (_client_error("404", 404, "HeadBucket", "Not Found"), False, Fault.NO_BUCKET),
    (_client_error("BadDigest", 400, "UploadPart", "The Content-Md5 you specified did not match"), False,
     Fault.CORRUPTED),
    (_translated(PermissionError, _client_error("SignatureDoesNotMatch", 403)), False, Fault.DENIED),
    (_translated(PermissionError, _client_error("InvalidAccessKeyId", 403)), False, Fault.DENIED),
    (_translated(FileNotFoundError, _client_error("NoSuchBucket", 404)), False, Fault.NO_BUCKET),
    # a missing object is not a missing bucket, and a word in a message decides nothing
    (_translated(FileNotFoundError, _client_error("NoSuchKey", 404, message="bucket does not exist")), False,
     Fault.OTHER),
    (_client_error("AccessDenied", 403, message="could not connect: endpoint timeout"), False, Fault.DENIED),
    (RuntimeError("403 Forbidden: could not connect to the endpoint, NoSuchBucket"), False, Fault.OTHER),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), False, Fault.UNREACHABLE),
    (_translated(OSError, EndpointConnectionError(endpoint_url="http://127.0.0.1:1")), False, Fault.UNREACHABLE),
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), False, Fault.UNREACHABLE),
    (NoCredentialsError(), False, Fault.NO_CREDENTIALS),
    (PermissionError(errno.EACCES, "Permission denied"), True, Fault.LOCAL_DENIED),
    (OSError(errno.ENOSPC, "No space left on device"), True, Fault.LOCAL_FULL),
])
def test_a_storage_fault_is_told_by_the_exception_type(exc, local, fault):
    assert storage_fault(exc, local=local) is fault


def test_the_transfer_options_come_from_the_configuration(tmp_path, monkeypatch):
    _config(tmp_path, monkeypatch, "    uploadChunkMegabytes: 6\n    uploadConcurrency: 3\n")
    monkeypatch.setenv("EXPORT_BUCKET", "some-bucket")
    assert Target(load_settings()).transfer == {"chunksize": 6 * MIB, "max_concurrency": 3}
    monkeypatch.delenv("EXPORT_BUCKET")
    assert Target(load_settings()).transfer == {}  # a local folder: a plain copy
    _config(tmp_path, monkeypatch, "    uploadChunkMegabytes: 4\n")
    with pytest.raises(Exception, match="uploadChunkMegabytes"):  # S3 refuses parts under 5 MiB
        load_settings()


@pytest.mark.services
def test_a_part_file_over_the_multipart_threshold_goes_up_in_parts_intact(s3_server, tmp_path, monkeypatch):
    _config(tmp_path, monkeypatch, "    uploadChunkMegabytes: 5\n    uploadConcurrency: 2\n")
    bucket, remote = new_bucket(s3_server, monkeypatch)
    target = Target(load_settings())
    local = tmp_path / "part-00000.csv.gz"
    data = os.urandom(13 * MIB)  # three parts of 5, 5 and 3 MiB
    local.write_bytes(data)
    path = target.root / "big" / local.name
    target.guarded("upload", partial(put_file, local, path, **target.transfer))
    client = s3_server.client()
    head = client.head_object(Bucket=bucket, Key=f"{remote}/big/{local.name}")
    assert head["ETag"].strip('"').endswith("-3")  # S3's mark of an object assembled from 3 uploaded parts
    body = client.get_object(Bucket=bucket, Key=f"{remote}/big/{local.name}")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")  # nothing left half-done
    # a small file is one PUT, and a re-upload replaces the object whole
    local.write_bytes(b"small")
    target.guarded("upload", partial(put_file, local, path, **target.transfer))
    assert client.get_object(Bucket=bucket, Key=f"{remote}/big/{local.name}")["Body"].read() == b"small"


@pytest.mark.services
@pytest.mark.parametrize(("own_choice", "header"), [(None, b"UNSIGNED-PAYLOAD"), (True, None)])
def test_the_export_client_signs_a_bodys_checksum_instead_of_hashing_the_body_again(s3_server, tmp_path, monkeypatch,
                                                                                   own_choice, header):
    """Over http:// botocore would hash every body again for SigV4 (a second pass over each part, in 1 MiB
    allocations); the export's client signs the ``x-amz-checksum-sha256`` header instead, which S3 checks the body
    against. A connection that chooses payload signing keeps its choice; its other client options stay, and the
    client is the connection's (endpoint, region) without the provider's call-stack walk."""
    _config(tmp_path, monkeypatch)
    _, remote = new_bucket(s3_server, monkeypatch)
    if own_choice is not None:
        conn = json.loads(s3_server.connection_uri())
        conn["extra"]["config_kwargs"]["s3"]["payload_signing_enabled"] = own_choice
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    stack_walks = []
    monkeypatch.setattr(inspect, "stack", lambda *a, **k: stack_walks.append(1) or [])
    s3 = Target(load_settings()).s3
    assert s3 is not None
    assert not stack_walks  # the provider's user agent walks the stack (0.13 s): the export names itself
    assert "Caller/MeccanoExport" in s3.client.meta.config.user_agent_extra
    assert s3.client.meta.endpoint_url == s3_server.endpoint
    assert s3.client.meta.config.s3 == {"addressing_style": "path", "payload_signing_enabled": bool(own_choice)}
    assert s3.client.meta.config.retries["total_max_attempts"] == 3  # the connection's "max_attempts": 2 retries
    signed: list[bytes] = []
    s3.client.meta.events.register("before-send.s3.PutObject",
                                   lambda request, **_: signed.append(request.headers["X-Amz-Content-SHA256"]))
    local = tmp_path / "part-00000.csv.gz"
    local.write_bytes(b"1,2024-01-01 00:00:00\n" * 1000)
    checksum = s3.put_whole(local, f"{remote}/x/{local.name}", hashlib.sha256(local.read_bytes()).hexdigest())
    assert checksum == "sha256:" + base64.b64encode(hashlib.sha256(local.read_bytes()).digest()).decode()
    if header is None:  # signed the old way: the body's own SHA-256
        assert signed == [hashlib.sha256(local.read_bytes()).hexdigest().encode()]
    else:
        assert signed == [header]


def test_memory_freed_is_handed_back_to_the_os(tmp_path):
    """Memory a thread freed between blocks still in use stays resident in that thread's malloc arena (as botocore's
    parsed service model left 8-13 MB on the export's sender thread); :func:`release_freed_memory` hands it back
    (glibc; elsewhere it reports False)."""
    script = tmp_path / "arena.py"
    script.write_text(textwrap.dedent("""
        import os, threading
        from meccano.export.memory import release_freed_memory
        def rss():
            return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        kept = []
        def churn():  # 200 blocks of 64 KiB (written, so resident), each followed by a small one kept
            blocks = [(b"x" * 65536, kept.append(b"y" * 2048))[0] for _ in range(200)]
            del blocks
        thread = threading.Thread(target=churn)
        thread.start()
        thread.join()
        before = rss()
        print(release_freed_memory(), before - rss())
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=120)
    done, released = out.stdout.split()
    assert done == "True"
    assert int(released) > 4 * MIB  # of the 12.5 MiB freed (8-12 MiB seen)


def _connection(endpoint: str, secret: str) -> str:
    return json.dumps({"conn_type": "aws", "login": "meccanoTestAccessKey", "password": secret,
                       "extra": {"endpoint_url": endpoint, "region_name": "us-east-1",
                                 "config_kwargs": {"s3": {"addressing_style": "path"},
                                                   "retries": {"max_attempts": 1}, "connect_timeout": 2}}})


@pytest.mark.services
@pytest.mark.parametrize(("failure", "step"), [
    # SeaweedFS creates a missing bucket on a write (the reason for the bucket check): no upload case for it
    ("missing_bucket", "read_back"), ("missing_bucket", "preflight"),
    ("wrong_keys", "upload"), ("wrong_keys", "read_back"), ("wrong_keys", "preflight"),
    ("endpoint_down", "upload"), ("endpoint_down", "read_back"), ("endpoint_down", "preflight"),
])
def test_each_storage_failure_names_its_cause_and_fix_without_the_secret(failure, step, s3_server, tmp_path,
                                                                         monkeypatch):
    """Through s3fs (the multipart upload of a part file, verify's read-back) and through boto3 (the bucket check
    before anything)."""
    _config(tmp_path, monkeypatch, "    uploadChunkMegabytes: 5\n")
    bucket, remote = new_bucket(s3_server, monkeypatch)
    wrong = "Wrong-Secret-Value-9876543210"
    # its own connection id per case: Airflow keeps one filesystem per connection id in a process
    conn_id = f"aws_target_{failure}_{step}"
    endpoint, secret = s3_server.endpoint, SECRET_KEY
    if failure == "missing_bucket":
        bucket = "no-such-bucket-for-target"
        monkeypatch.setenv("EXPORT_BUCKET", bucket)
        expected = f"the bucket '{bucket}' does not exist: create it or fix EXPORT_BUCKET"
    elif failure == "wrong_keys":
        secret = wrong
        expected = f"S3 rejected the credentials of the Airflow connection '{conn_id}'"
    else:
        endpoint = f"http://127.0.0.1:{free_port()}"
        expected = f"cannot reach the S3 endpoint of connection '{conn_id}'"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", _connection(endpoint, secret))
    monkeypatch.setenv("MECCANO_AWS_CONN_ID", conn_id)
    target = Target(load_settings())
    local = tmp_path / "part-00000.csv.gz"
    local.write_bytes(os.urandom(11 * MIB))  # over the threshold: a multipart upload
    with pytest.raises(StorageError) as err:
        if step == "upload":
            target.guarded("upload day", partial(put_file, local, target.root / local.name, **target.transfer))
        elif step == "read_back":
            target.guarded("verify day", partial(size_and_sha256, target.root / local.name))
        else:
            target.preflight()
    message = str(err.value)
    assert expected in message, message
    assert SECRET_KEY not in message and wrong not in message
    assert err.value.__cause__ is None and err.value.__context__ is None  # no chained trace carries a secret
    assert not s3_server.client().list_objects_v2(Bucket="meccano-export-tests", Prefix=f"{remote}/").get("Contents")


def test_a_local_target_gets_the_whole_file_and_the_upload_is_recorded_as_lineage(tmp_path, monkeypatch):
    """The target object is the task's lineage output, as ``ObjectStoragePath``'s own writes record it."""
    from airflow.sdk import lineage

    collector = lineage.HookLineageCollector()
    monkeypatch.setattr(lineage, "get_hook_lineage_collector", lambda: collector)
    _config(tmp_path, monkeypatch)
    monkeypatch.delenv("EXPORT_BUCKET", raising=False)
    target = Target(load_settings())
    folder = target.root / "facts" / "day=01"
    folder.mkdir(parents=True, exist_ok=True)
    local = tmp_path / "part-00000.csv.gz"
    data = os.urandom(3 * MIB)
    local.write_bytes(data)
    target.guarded("upload", partial(put_file, local, folder / local.name, **target.transfer))
    assert (folder / local.name).read_bytes() == data
    assert [info.asset.uri for info in collector.collected_assets.outputs] == [str(folder / local.name)]
