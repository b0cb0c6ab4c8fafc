"""The export target: where exports go, and how a day's objects are put there, read back and listed.

``s3://EXPORT_BUCKET/EXPORT_REMOTEDIRECTORY`` or, when EXPORT_BUCKET is empty (the embedded demo),
``file://<EXPORT_LOCALDIRECTORY>/meccano-export/<remoteDirectory>`` (``EXPORT_LOCALDIRECTORY`` empty:
``$AIRFLOW_HOME/meccano-exports``; every folder from ``meccano-export`` down must be the worker's own). Both are
:class:`airflow.sdk.ObjectStoragePath`, so one code path writes, lists, reads back and deletes.
Storage errors are turned by :meth:`Target.guarded` into :class:`StorageError` messages that say what
to fix and never contain a credential; the cause is told by the exception's type (:func:`storage_fault`:
botocore's error codes, the ``PermissionError``/``FileNotFoundError`` s3fs turns them into, connection
errors), never by words of its message.

A part file goes up to S3 through :mod:`meccano.export.s3objects` (boto3, the connection's client): one ``PUT``
or, for a file of at least two ``export.uploadChunkMegabytes`` chunks, a multipart upload of
``export.uploadConcurrency`` chunks at a time, always with S3's SHA-256 checksums, so S3 itself refuses bytes
that differ from what was written; a failed multipart upload is aborted, and the next attempt sweeps those of an
attempt that died (:meth:`Target.sweep_uploads`). A local target's parts go through the filesystem's own transfer
(:func:`put_file`, fsspec ``put_file``), the stored size checked right after.

Upload of a day (:meth:`Target.upload_day`): its new parts, then its manifest, then stale parts removed. The
manifest is written after every part it lists, and it is the single source of truth of a day: a stale
part (left by an earlier export of the same day with more parts, or by an attempt that died mid-upload)
is deleted right after, so the day's folder ends up holding exactly what the manifest lists.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from enum import StrEnum
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import lineage  # the public airflow.sdk namespace's lineage module
from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError, PartialCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError
from fsspec.exceptions import FSTimeoutError

from meccano.errors import StorageError
from meccano.export.location import target_root, target_url
from meccano.export.memory import release_freed_memory
from meccano.export.model import MANIFEST_NAME, Manifest, Part, TableDay
from meccano.export.s3objects import PartStreams, S3Objects, export_client
from meccano.secrets.redaction import redact_text
from meccano.settings.config import Settings
from meccano.settings.connections import aws_conn_id
from meccano.settings.secrets import known_secrets

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

T = TypeVar("T")
COPY_BUFFER = 8 * 1024 * 1024
MEBIBYTE = 1024 * 1024


class Target:
    """The export target of one task: its root, and storage actions whose failures are explained and
    redacted (the secrets are gathered only when an error needs them)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.url = target_url(settings)

    @cached_property
    def root(self) -> ObjectStoragePath:
        return target_root(self._settings)

    @cached_property
    def transfer(self) -> dict[str, int]:
        """Options of the filesystem's own upload: s3fs's multipart chunk size and parts sent at once (none for
        other filesystems, whose ``put_file`` has no such options)."""
        if not self.url.startswith("s3://"):
            return {}
        e = self._settings.export
        return {"chunksize": e.upload_chunk_megabytes * MEBIBYTE, "max_concurrency": e.upload_concurrency}

    @property
    def multipart(self) -> tuple[int, int]:
        """Chunk bytes of a multipart upload and chunks sent at once (``export.uploadChunkMegabytes``,
        ``export.uploadConcurrency``)."""
        e = self._settings.export
        return e.upload_chunk_megabytes * MEBIBYTE, e.upload_concurrency

    @cached_property
    def s3(self) -> S3Objects | None:
        """The bucket through boto3 (checksummed uploads, ``HEAD`` of checksums, multipart sweep); None for a
        local target."""
        if not self.url.startswith("s3://"):
            return None
        # lazy: the amazon provider's S3Hook costs 73 ms at import (python -X importtime); a local target never needs it
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        bucket = self.url[len("s3://"):].split("/", 1)[0]
        objects = S3Objects(export_client(S3Hook(aws_conn_id=aws_conn_id(self._settings))), bucket)
        release_freed_memory()  # what botocore freed reading its service model (meccano.export.memory)
        return objects

    def streams(self, prepare: Callable[[], None]) -> PartStreams | None:
        """Part files sent to S3 while they are written (:class:`PartStreams`, which runs ``prepare`` first); None
        for a local target (its parts are copied once written)."""
        if not self.url.startswith("s3://"):
            return None

        def objects() -> S3Objects:
            s3 = self.s3
            assert s3 is not None
            return s3

        return PartStreams(objects, self.multipart[0], prepare)

    def sweep_uploads(self, days: list[TableDay], log: logging.Logger) -> int:
        """Abort what attempts that died left of their multipart uploads (:meth:`S3Objects.sweep_uploads`)."""
        s3 = self.s3
        if s3 is None:
            return 0
        root = self.url[len("s3://"):].split("/", 1)[1] if "/" in self.url[len("s3://"):] else ""
        folders = [key_of(self.day_folder(day)) + "/" for day in days]
        return self.guarded("sweep incomplete uploads", lambda: s3.sweep_uploads(root and root + "/", folders, log))

    def day_folder(self, day: TableDay) -> ObjectStoragePath:
        """Hive-style folder of a table-day: ``<prefix>/year=YYYY/month=MM/day=DD``."""
        return day_dir(self.root, day.prefix, day.day)

    def preflight(self) -> None:
        """Fail early and clearly when the S3 bucket is missing, unreachable or refuses the credentials
        (some S3 servers would otherwise create a missing bucket on the first write). The task's one S3 client
        is made here (its set-up, about 0.1-0.2 s, is paid once per task)."""
        if not self.url.startswith("s3://"):
            return
        bucket = self.url[len("s3://"):].split("/", 1)[0]

        def head() -> None:
            s3 = self.s3
            assert s3 is not None  # an s3:// target
            s3.client.head_bucket(Bucket=bucket)

        self.guarded(f"check bucket {bucket!r}", head)

    def read_object(self, folder: ObjectStoragePath, name: str) -> bytes | None:
        """A small object of a day's folder (a manifest); None when it does not exist. On S3 through the
        task's client (no second client stack for the filesystem)."""
        s3 = self.s3
        if s3 is not None:
            return s3.get(key_of(folder / name))
        path = folder / name
        return read_bytes(path) if path.exists() else None

    def names_in(self, folder: ObjectStoragePath) -> list[str]:
        """The objects directly in ``folder`` as the store lists them now (empty when there is none)."""
        s3 = self.s3
        if s3 is not None:
            return s3.names(key_of(folder))
        return [p.name for p in fresh_listing(folder)]

    def remove(self, folder: ObjectStoragePath, name: str) -> None:
        s3 = self.s3
        if s3 is not None:
            s3.delete(key_of(folder / name))
        else:
            (folder / name).unlink()

    def prepare(self) -> ObjectStoragePath:
        """:meth:`preflight`, then the root (a local target's folder is created): what a task checks first."""
        self.preflight()
        return self.root

    def describe(self, exc: BaseException, where: str) -> str:
        """A short, secret-free explanation of a storage failure with the fix."""
        return describe_storage_error(exc, where, self._settings)

    def guarded(self, where: str, action: Callable[[], T]) -> T:
        """Run a storage action; failures become a :class:`StorageError` without secrets or chained traces."""
        try:
            return action()
        except StorageError:
            raise
        except Exception as exc:
            message = self.describe(exc, where)
        raise StorageError(message)

    def upload_day(self, day: TableDay, folder: Path, manifest: Manifest, new_parts: list[Part],
                   log: logging.Logger, streams: PartStreams | None = None) -> int:
        """Upload ``new_parts`` from ``folder`` (or wait for those ``streams`` sent while they were written) and the
        manifest; returns the stale objects removed. The manifest's parts are replaced by the parts as stored
        (their S3 checksums)."""
        day_folder = self.day_folder(day)
        where = f"upload {day.label} to {day_folder}"
        if day_folder.protocol in ("file", "local"):  # S3 has no folders (and must never create the bucket)
            day_folder.mkdir(parents=True, exist_ok=True)
        stored: dict[str, Part] = {}
        for part in new_parts:
            local = folder / part.key
            stored[part.key] = self.guarded(where, partial(put_part, self, local, day_folder / part.key, part,
                                                           streams))
            log.info("uploaded %s (%d bytes%s)", day_folder / part.key, part.bytes,
                     ", S3 checksum matches" if stored[part.key].checksum else "")
        manifest.parts = [stored.get(p.key, p) for p in manifest.parts]
        body = json.dumps(manifest.public_json(), indent=1).encode()
        self.guarded(where, lambda: put_manifest(self, body, day_folder / MANIFEST_NAME))
        listed = manifest.keys
        stale = [name for name in self.guarded(where, lambda: self.names_in(day_folder)) if name not in listed]
        for name in stale:
            self.guarded(where, partial(self.remove, day_folder, name))
            log.info("removed stale object %s (not in the manifest)", day_folder / name)
        return len(stale)


def day_dir(root: ObjectStoragePath, prefix: str, day: str) -> ObjectStoragePath:
    """Hive-style partition folder: ``<prefix>/year=YYYY/month=MM/day=DD``."""
    year, month, dom = day.split("-")
    return root / prefix / f"year={year}" / f"month={month}" / f"day={dom}"


class Fault(StrEnum):
    """What went wrong with the storage, as told by the exception's type (and S3's error code)."""

    NO_BUCKET = "no_bucket"
    DENIED = "denied"
    NO_CREDENTIALS = "no_credentials"
    UNREACHABLE = "unreachable"
    LOCAL_DENIED = "local_denied"
    LOCAL_FULL = "local_full"
    BUSY = "busy"
    CORRUPTED = "corrupted"
    OTHER = "other"


# S3 error codes (botocore's ClientError ``Error.Code``): a HEAD has no body, so its code is the HTTP status
NO_BUCKET_CODES = frozenset({"NoSuchBucket"})
DENIED_CODES = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId",
                          "ExpiredToken", "InvalidToken", "TokenRefreshRequired", "AllAccessDisabled",
                          "AccountProblem", "Forbidden", "403"})
# S3 overloaded or failing for a while: the same request later succeeds (botocore retried it already)
BUSY_CODES = frozenset({"SlowDown", "ServiceUnavailable", "Throttling", "ThrottlingException", "RequestTimeout",
                        "InternalError", "500", "502", "503", "504"})
# the bytes S3 received do not hash to the checksum the export sent with them
CORRUPTED_CODES = frozenset({"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"})


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it was raised from or while handling (s3fs keeps botocore's error as the cause)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def unreachable_types() -> tuple[type[BaseException], ...]:
    """Exceptions of an endpoint that cannot be reached: botocore's connection and timeout errors
    (``EndpointConnectionError``, ``ConnectTimeoutError``, ``ReadTimeoutError``, ...), aiohttp's connection
    errors, fsspec's timeout, and the operating system's (refused, reset, unknown host, timed out)."""

    found: list[type[BaseException]] = [ConnectionError, TimeoutError, socket.gaierror, BotoConnectionError,
                                        HTTPClientError, FSTimeoutError]
    try:
        # lazy: aiohttp costs 220 ms at import (python -X importtime); only a failure is classified with it
        from aiohttp import ClientConnectionError, ServerTimeoutError

        found += [ClientConnectionError, ServerTimeoutError]
    except ImportError:  # pragma: no cover - s3fs brings aiohttp; without s3fs there is no s3:// target
        pass
    return tuple(found)


def client_error_fault(exc: BaseException) -> Fault | None:
    """The fault a botocore ``ClientError`` names by its error code (or its HTTP status), else None."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict) or "Error" not in response:
        return None
    code = str(response["Error"].get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in NO_BUCKET_CODES or (getattr(exc, "operation_name", "") == "HeadBucket" and status == 404):
        return Fault.NO_BUCKET
    if code in DENIED_CODES or status == 403:
        return Fault.DENIED
    if code in BUSY_CODES or (isinstance(status, int) and status >= 500):
        return Fault.BUSY
    if code in CORRUPTED_CODES:
        return Fault.CORRUPTED
    return Fault.OTHER


def storage_fault(exc: BaseException, local: bool = False) -> Fault:
    """Classify a storage failure by the types in its chain: S3's error code first, then missing credentials,
    then connection errors, then the ``OSError`` subclasses (s3fs's translation of a code it had)."""
    chain = list(exception_chain(exc))
    for err in chain:
        if isinstance(err, ClientError):
            return client_error_fault(err) or Fault.OTHER
    if any(isinstance(err, (NoCredentialsError, PartialCredentialsError)) for err in chain):
        return Fault.NO_CREDENTIALS
    if not local and any(isinstance(err, unreachable_types()) for err in chain):
        return Fault.UNREACHABLE
    if isinstance(exc, PermissionError):
        return Fault.LOCAL_DENIED if local else Fault.DENIED
    if local and isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return Fault.LOCAL_FULL
    return Fault.OTHER


def redacted(text: str, settings: Settings) -> str:
    """``text`` through the project's one redaction: every known secret, in its encoded forms too."""
    return redact_text(text, known_secrets(settings))


def fault_hint(fault: Fault, settings: Settings) -> str:
    """What a fault means for this configuration, and its fix."""
    bucket = settings.export.bucket or "(local folder)"
    conn = settings.aws.conn_id
    hints = {
        Fault.NO_BUCKET: f"the bucket {bucket!r} does not exist: create it or fix EXPORT_BUCKET (export.bucket)",
        Fault.DENIED: (f"S3 rejected the credentials of the Airflow connection {conn!r} (or aws.accessKeyId/"
                       "secretAccessKey): check the key pair and its permissions on the bucket"),
        Fault.NO_CREDENTIALS: (f"no S3 credentials were found for the Airflow connection {conn!r}: set its login "
                               "and password (or aws.accessKeyId/secretAccessKey)"),
        Fault.UNREACHABLE: (f"cannot reach the S3 endpoint of connection {conn!r}: check endpoint_url/network; "
                            "nothing was purged, re-run when it is reachable"),
        Fault.LOCAL_DENIED: ("the worker's user may not write the export folder (EXPORT_LOCALDIRECTORY, or the "
                             "file:// EXPORT_BUCKET): fix its permissions; nothing was purged, re-run"),
        Fault.LOCAL_FULL: ("the export folder's disk is full: free space or point EXPORT_LOCALDIRECTORY elsewhere; "
                           "nothing was purged, re-run"),
        Fault.BUSY: (f"the S3 endpoint of connection {conn!r} is overloaded or failing (SlowDown/5xx, after the "
                     "client's own retries): nothing was purged; the task's retries run it again, or re-run later"),
        Fault.CORRUPTED: (f"the bytes the S3 endpoint of connection {conn!r} received did not match the SHA-256 "
                          "sent with them (BadDigest), after the client's own retries: something between the "
                          "worker and S3 alters data (a proxy, a faulty network card); S3 refused the object, "
                          "nothing was purged; fix the path and re-run"),
    }
    return hints.get(fault, "nothing was purged; fix the cause and re-run")


def describe_storage_error(exc: BaseException, where: str, settings: Settings) -> str:
    """A short, secret-free explanation of a storage failure with the fix."""
    fault = storage_fault(exc, local=target_url(settings).startswith("file://"))
    text = redacted(f"{type(exc).__name__}: {exc}", settings)
    return f"{where}: {fault_hint(fault, settings)} ({text[:300]})"


def put_file(local: Path, remote: ObjectStoragePath, **transfer: int) -> None:
    """Upload one file with the filesystem's own transfer (``transfer``: :attr:`Target.transfer`), then check
    the stored size. fsspec's ``put_file`` takes the path as it is (``put``/``ObjectStoragePath.copy`` would
    glob it and list the destination first); the target object is recorded as the task's lineage output,
    as ``ObjectStoragePath``'s own writes are."""
    expected = local.stat().st_size
    remote.fs.put_file(str(local), remote.path, **transfer)
    lineage.get_hook_lineage_collector().add_output_asset(context=remote, uri=str(remote))
    stored = remote.size()
    if stored != expected:
        raise StorageError(f"{remote} holds {stored} bytes after the upload of {local.name} ({expected} bytes): "
                           "the upload is incomplete and is not counted as exported; nothing was purged, re-run "
                           "the export")


def put_bytes(data: bytes, remote: ObjectStoragePath) -> None:
    with remote.open("wb") as dst:
        dst.write(data)


def key_of(path: ObjectStoragePath) -> str:
    """An S3 object's key (the path without its bucket)."""
    return str(path.key)


def put_part(target: Target, local: Path, remote: ObjectStoragePath, part: Part,
             streams: PartStreams | None = None) -> Part:
    """Upload one part file, or wait for its upload when it was streamed while written (``streams``); the part
    as stored (with S3's checksum where the store keeps them)."""
    s3 = target.s3
    if s3 is None:
        put_file(local, remote, **target.transfer)
        return part
    key = key_of(remote)
    if streams is not None and key in streams:
        checksum = streams.result(key)
    else:
        chunk, concurrency = target.multipart
        checksum = s3.put(local, key, part.sha256, chunk, concurrency)
    lineage.get_hook_lineage_collector().add_output_asset(context=remote, uri=str(remote))
    return replace(part, checksum=checksum)


def put_manifest(target: Target, body: bytes, remote: ObjectStoragePath) -> None:
    """The manifest, sent with its checksum where the target is S3."""
    s3 = target.s3
    if s3 is None:
        put_bytes(body, remote)
        return
    s3.client.put_object(Bucket=s3.bucket, Key=key_of(remote), Body=body,
                         ChecksumSHA256=base64.b64encode(hashlib.sha256(body).digest()).decode())


def read_bytes(remote: ObjectStoragePath) -> bytes:
    with remote.open("rb") as src:
        data: bytes = src.read()
        return data


def size_and_sha256(remote: ObjectStoragePath) -> tuple[int, str]:
    """Stream an object back and hash it (what is really stored, not what was sent)."""
    digest = hashlib.sha256()
    size = 0
    with remote.open("rb") as src:
        while True:
            block = src.read(COPY_BUFFER)
            if not block:
                break
            size += len(block)
            digest.update(block)
    return size, digest.hexdigest()


def fresh_listing(folder: ObjectStoragePath) -> list[ObjectStoragePath]:
    """Objects directly in ``folder`` (no cached listing); empty when it does not exist."""
    fs: Any = folder.fs
    if hasattr(fs, "invalidate_cache"):
        fs.invalidate_cache()
    if not folder.exists():
        return []
    return [p for p in folder.iterdir() if p.is_file()]


def check_target_unknown(target: Target, day: TableDay, run_id: str) -> None:
    """Refuse to overwrite a day in the target that the ledger does not know (called before anything of
    the day is written, only when the ledger has no entry for it)."""
    day_folder = target.day_folder(day)
    where = f"upload {day.label} to {day_folder}"
    body = target.guarded(where, lambda: target.read_object(day_folder, MANIFEST_NAME))
    if body is None:
        return
    remote = json.loads(body)
    if remote.get("runId") != run_id:
        raise StorageError(f"{where}: the target already holds an export of this day that the ledger "
                           "(ExportLedger) does not know; move it away or restore the ledger before re-running")
