"""The export's own S3 transfer: parts sent with S3's checksums, failed multipart uploads aborted, and the
incomplete uploads of dead attempts swept.

**Checksums instead of a read-back.** Every part is sent with its SHA-256 (``x-amz-checksum-sha256``): one
``PUT`` carries the digest the part file's writer took of the bytes as it wrote them
(:mod:`meccano.export.partfile`), and S3 refuses the object (``BadDigest``) unless the bytes it received hash to
it. A multipart upload (a file of at least two ``export.uploadChunkMegabytes`` chunks) sends each chunk with its
own digest and S3 keeps the *composite* checksum (the SHA-256 of the chunks' digests, ``-N`` for N chunks); the
chunks are read from the file in order and hashed as a whole too, which must give the writer's digest again.
The checksum S3 answers with is recorded on the part (:attr:`~meccano.export.model.Part.checksum`), and verify
asks S3 for it (``HEAD`` with ``ChecksumMode=ENABLED``) instead of reading the object back.

Whether the store keeps checksums is seen at run time, from its answers, never configured: a store that
answers a ``PUT`` without a checksum gets a ``HEAD`` of the size instead, and verify reads such parts back
(:func:`meccano.export.verify.verify_days`).

**Nothing half-uploaded is left.** A multipart upload that fails (S3's error, a reset connection, the task's
time limit: anything, ``BaseException`` included) is aborted before the error goes on. An attempt killed
outright cannot abort its own upload: the next export attempt sweeps the incomplete uploads under the folders
of the days it exports, and any under the export's root older than ``SWEEP_AGE_SECONDS`` (:func:`sweep_uploads`).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, suppress
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from botocore.config import Config
from botocore.exceptions import ClientError
from s3transfer.utils import ReadFileChunk

from meccano.errors import StorageError

ALGORITHM = "SHA256"
READ_BLOCK = 1024 * 1024  # bytes hashed at a time while a streamed chunk is read back
SWEEP_AGE_SECONDS = 3600  # an incomplete upload under the export root, outside today's days, older than this


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def sha256_b64(hex_digest: str) -> str:
    """S3's form (base64) of a hex SHA-256."""
    return b64(bytes.fromhex(hex_digest))


USER_AGENT = "Caller/MeccanoExport"  # what the provider's hook would name by walking the call stack


def export_client(hook: Any) -> Any:
    """The boto3 client of an ``S3Hook``'s connection (its session, endpoint, client options and TLS check), made
    to sign headers but not hash bodies for SigV4, and without the hook's call-stack walk.

    **Bodies.** Over ``http://`` botocore otherwise reads every body once more, in 1 MiB reads, to put its SHA-256 in
    the signature: for a part, a second hash of bytes this module has just hashed. Every body this client sends
    carries its SHA-256 in ``x-amz-checksum-sha256`` (parts, whole objects, manifests), a header the signature
    covers and S3 checks the body against (``BadDigest``); the list of a multipart upload's parts is checked through
    the composite checksum S3 answers. That is the integrity botocore itself settles for over ``https://``. A
    connection that sets ``payload_signing_enabled`` in its ``config_kwargs`` keeps its choice.

    **The user agent.** ``S3Hook.get_client_type`` names the calling operator in the user agent by
    ``inspect.stack()``, which reads the source of every frame's module: 0.13 s of the client's 0.3-0.4 s set-up
    in the benchmark, more under a task runner's deeper stack, all of it holding up the export's first rows
    (bench/README.md). The client is made from the hook's own session instead, as that method does, and says
    who calls in its user agent directly.
    """
    config = hook.config or Config()
    s3 = dict(config.s3 or {})
    s3.setdefault("payload_signing_enabled", False)
    agent = " ".join(filter(None, [USER_AGENT, config.user_agent_extra]))
    return hook.get_session(region_name=hook.region_name).client(
        "s3", endpoint_url=hook.conn_config.get_service_endpoint_url("s3"), verify=hook.verify,
        config=config.merge(Config(s3=s3, user_agent_extra=agent)))


class _Upload(NamedTuple):
    """One multipart upload under way: its object's key, S3's id of it, its senders and the chunks in flight at
    most."""

    key: str
    upload_id: str
    pool: ThreadPoolExecutor
    concurrency: int


class S3Objects:
    """One bucket of the export target through boto3 (the Airflow connection's client)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client, self.bucket = client, bucket

    def put(self, local: Path, key: str, sha256_hex: str, chunk: int, concurrency: int) -> str | None:
        """Upload ``local`` to ``key``; the checksum S3 stored (``sha256:<base64>[-N]``), or None when the
        store keeps none (its size was checked instead)."""
        size = local.stat().st_size
        if size < 2 * chunk:
            return self.put_whole(local, key, sha256_hex)
        answer, expected = self._multipart(local, key, sha256_hex, chunk, concurrency)
        return self.checked(answer, key, size, local.name, expected)

    def put_whole(self, local: Path, key: str, sha256_hex: str) -> str | None:
        """``local`` in one ``PUT`` (as :meth:`put`)."""
        with local.open("rb") as body:
            answer = self.client.put_object(Bucket=self.bucket, Key=key, Body=body,
                                            ChecksumSHA256=sha256_b64(sha256_hex))
        return self.checked(answer, key, local.stat().st_size, local.name, sha256_b64(sha256_hex))

    def checked(self, answer: dict[str, Any], key: str, size: int, name: str, expected: str) -> str | None:
        """The checksum S3 answered an upload with (``sha256:<base64>[-N]``), checked against ``expected``; None
        when the store keeps none (the stored size is checked instead)."""
        stored = answer.get("ChecksumSHA256")
        if stored is None:  # no checksums in this store: at least the size
            self._check_size(key, size, name)
            return None
        if stored != expected:
            raise StorageError(f"s3://{self.bucket}/{key} has checksum {stored} after the upload of {name}, "
                               f"{expected} was sent: the object is not counted as exported; nothing was purged, "
                               "re-run the export")
        return f"sha256:{stored}"

    def _check_size(self, key: str, size: int, name: str) -> None:
        stored = int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        if stored != size:
            raise StorageError(f"s3://{self.bucket}/{key} holds {stored} bytes after the upload of {name} ({size} "
                               "bytes): the upload is incomplete and is not counted as exported; nothing was "
                               "purged, re-run the export")

    def _multipart(self, local: Path, key: str, sha256_hex: str, chunk: int,
                   concurrency: int) -> tuple[dict[str, Any], str]:
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, ChecksumAlgorithm=ALGORITHM)
        upload_id = upload["UploadId"]
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="meccano-export-upload")
        try:
            parts, digests = self._send_chunks(_Upload(key, upload_id, pool, concurrency), local, sha256_hex, chunk)
            answer = self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
        except BaseException:  # S3's error, a reset, the task's time limit: the upload never stays behind
            pool.shutdown(wait=False, cancel_futures=True)
            self.abort(key, upload_id)
            raise
        pool.shutdown(wait=True)
        composite = b64(hashlib.sha256(b"".join(digests)).digest())
        return answer, f"{composite}-{len(digests)}"

    def _send_chunks(self, upload: _Upload, local: Path, sha256_hex: str,
                     chunk: int) -> tuple[list[dict[str, Any]], list[bytes]]:
        """Read ``local`` in order (hashing it whole), each chunk sent with its digest; at most
        ``upload.concurrency`` chunks in flight (memory: that many chunks)."""
        key, upload_id, pool, concurrency = upload
        whole = hashlib.sha256()
        digests: list[bytes] = []
        pending: list[Future[dict[str, Any]]] = []
        done: list[dict[str, Any]] = []
        for number, data in enumerate(read_chunks(local, chunk), start=1):
            whole.update(data)
            digest = hashlib.sha256(data).digest()
            digests.append(digest)
            if len(pending) >= concurrency:
                done.append(pending.pop(0).result())
            pending.append(pool.submit(self.send_chunk, key, upload_id, number, data, digest))
        done += [f.result() for f in pending]
        if whole.hexdigest() != sha256_hex:
            raise StorageError(f"{local.name} changed on the local disk after it was written (sha256 "
                               f"{whole.hexdigest()[:12]}…, written {sha256_hex[:12]}…): nothing was purged, re-run")
        return done, digests

    def send_chunk(self, key: str, upload_id: str, number: int, data: bytes | ReadFileChunk,
                   digest: bytes) -> dict[str, Any]:
        answer = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                         Body=data, ChecksumSHA256=b64(digest))
        part = {"PartNumber": number, "ETag": answer["ETag"]}
        if "ChecksumSHA256" in answer:
            part["ChecksumSHA256"] = answer["ChecksumSHA256"]
        return part

    def abort(self, key: str, upload_id: str) -> None:
        """Abort an upload; a failure to do so is left to the next attempt's sweep."""
        with suppress(Exception):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def stored(self, key: str) -> tuple[int, str | None] | None:
        """The object's size and its checksum as S3 keeps it (``sha256:...``, None without one); None when there
        is no such object."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise
        checksum = head.get("ChecksumSHA256")
        return int(head["ContentLength"]), (f"sha256:{checksum}" if checksum else None)

    def get(self, key: str) -> bytes | None:
        """The object's bytes (a small one: a manifest); None when there is no such object."""
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise
        with closing(answer["Body"]) as body:
            data: bytes = body.read()
        return data

    def names(self, folder: str) -> list[str]:
        """The names of the objects directly in ``folder`` (a key prefix without its ``/``), as S3 lists them
        now (no cached listing)."""
        prefix = folder.rstrip("/") + "/"
        found: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix,
                                                                          Delimiter="/"):
            found += [item["Key"][len(prefix):] for item in page.get("Contents", []) or []]
        return found

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def uploads(self, prefix: str) -> Iterator[dict[str, Any]]:
        """The incomplete multipart uploads under ``prefix``."""
        marks: dict[str, str] = {}
        while True:
            page = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix, **marks)
            yield from page.get("Uploads", []) or []
            if not page.get("IsTruncated"):
                return
            marks = {"KeyMarker": page.get("NextKeyMarker", ""), "UploadIdMarker": page.get("NextUploadIdMarker", "")}

    def sweep_uploads(self, root: str, days: list[str], log: logging.Logger) -> int:
        """Abort the incomplete uploads under ``root`` that sit in one of ``days`` (folders this attempt exports:
        no one else writes there now) or are older than ``SWEEP_AGE_SECONDS``; returns how many."""
        now = datetime.now(UTC)
        swept = 0
        for upload in list(self.uploads(root)):
            key = upload["Key"]
            started = upload.get("Initiated")
            old = isinstance(started, datetime) and (now - started).total_seconds() > SWEEP_AGE_SECONDS
            if old or any(key.startswith(day) for day in days):
                self.abort(key, upload["UploadId"])
                swept += 1
        if swept:
            log.info("aborted %d incomplete multipart upload(s) under s3://%s/%s left by export attempts that died",
                     swept, self.bucket, root)
        return swept


class PartStreams:
    """Part files sent to S3 while they are written, so that a day's upload overlaps the writing of the rest
    (the next day's rows, or the same day's next part).

    Each part file gets a :class:`PartStream` (its watcher, :class:`meccano.export.partfile.GrowthWatcher`): every
    time the file has grown by a chunk (``export.uploadChunkMegabytes``), that chunk goes up as the next part of
    a multipart upload; once the file is complete, the rest follows and the upload is completed (a file smaller
    than one chunk goes up in one ``PUT`` instead). One sender thread sends the chunks of every part in order, read
    back from the part file (the page cache) when their turn comes: the queue holds offsets, not bytes, so memory
    stays at one read block however far the sender falls behind, and the write never waits for S3. Checksums as
    for :meth:`S3Objects.put`. A part given up (its writer aborted: a failed write, or the exact re-read of
    :func:`meccano.export.write.write_days`) has its upload aborted and is no failure of the others.

    The sender's first job is ``prepare`` (the S3 client set up, the bucket checked, days the ledger does not know
    refused, dead attempts' uploads swept: :func:`meccano.export.chain.prepare_target`), so that it too runs while
    the database is read; the sender starts with the first part file (:meth:`start`). The first failure of any
    job stops the sender; the reader sees it at its next block (:meth:`check`) and stops the write.
    :meth:`result` waits for a part and raises its upload's failure; :meth:`abort` (any failure of the export, the
    task's time limit included) stops the sender and aborts every upload not completed.
    """

    def __init__(self, objects: Callable[[], S3Objects], chunk: int, prepare: Callable[[], None]) -> None:
        self.chunk = chunk
        self.buffer = memoryview(bytearray(READ_BLOCK))  # the sender's one read buffer: no allocation per block
        self.objects: S3Objects | None = None  # set by the sender once prepared
        self.failure: BaseException | None = None  # the first failure of any job
        self.stopped = False
        self._prepared = threading.Event()
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._streams: dict[str, PartStream] = {}
        self._lock = threading.Lock()  # upload ids: set by the sender, read by abort()
        self._jobs.put(partial(self._prepare, objects, prepare))
        self._sender = threading.Thread(target=self._run, name="meccano-export-upload", daemon=True)
        self._starting = threading.Lock()

    def start(self) -> None:
        """Start the sender (once). Called when the first part file is made (:meth:`watch`), so the first rows are
        already on their way: the S3 client's set-up decodes megabytes of botocore's JSON, holding the GIL for
        tens of milliseconds at a time, and the write's first queries (columns, date index, the scan) each
        waited behind it, 0.2 s in all (bench/README.md)."""
        with self._starting:
            if self._sender.ident is None:  # never started
                self._sender.start()

    def _prepare(self, objects: Callable[[], S3Objects], prepare: Callable[[], None]) -> None:
        try:
            prepare()
            self.objects = objects()
        except BaseException as exc:
            self.failure = exc
        finally:
            self._prepared.set()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None and not self.stopped:
            job()

    def ready(self) -> S3Objects:
        """Wait for ``prepare``; raise its failure, or the first failure of an upload."""
        self.start()
        self._prepared.wait()
        self.check()
        assert self.objects is not None
        return self.objects

    def check(self) -> None:
        """Raise the first failure of the sender's jobs, if any (the reader calls this at each block)."""
        if self.failure is not None:
            raise self.failure

    def watch(self, key: str, local: Path) -> PartStream:
        """The watcher of a new part file ``local`` whose object is ``key``."""
        stream = PartStream(self, key, local)
        self._streams[key] = stream
        self.start()
        return stream

    def __contains__(self, key: str) -> bool:
        return key in self._streams

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def result(self, key: str) -> str | None:
        """The checksum S3 stored for the part (as :meth:`S3Objects.put`), once its upload is complete."""
        return self._streams[key].result()

    def started(self, stream: PartStream, upload_id: str) -> bool:
        """Record a new multipart upload; False (and it is aborted) when the streams were stopped or the part
        given up meanwhile."""
        with self._lock:
            if not self.stopped and not stream.cancelled:
                stream.upload_id = upload_id
                return True
        stream.abort_upload(upload_id)
        return False

    def cancel(self, stream: PartStream) -> None:
        with self._lock:
            stream.cancelled = True
            upload_id = stream.upload_id if not stream.done.is_set() else None
        if upload_id:
            stream.abort_upload(upload_id)

    def abort(self) -> None:
        """Stop sending and abort every upload that is not complete (a failure to abort is left to the next
        attempt's sweep)."""
        with self._lock:
            self.stopped = True
            open_uploads = [(s, s.upload_id) for s in self._streams.values() if s.upload_id and not s.done.is_set()]
        self._jobs.put(None)
        for stream, upload_id in open_uploads:
            stream.abort_upload(upload_id)


class PartStream:
    """One part file's upload while it is written (the jobs run on the sender thread of its :class:`PartStreams`)."""

    def __init__(self, owner: PartStreams, key: str, local: Path) -> None:
        self.owner, self.key, self.local = owner, key, local
        self.chunk = owner.chunk
        self.upload_id: str | None = None
        self.done = threading.Event()
        self.cancelled = False
        self._queued = 0  # bytes handed to the sender so far (whole chunks)
        self._parts: list[dict[str, Any]] = []
        self._digests: list[bytes] = []
        self._whole = hashlib.sha256()
        self._checksum: str | None = None
        self._error: BaseException | None = None

    # on the file thread
    def grown(self, size: int) -> None:
        while size - self._queued >= self.chunk:
            self.owner.submit(partial(self._send, self._queued, self.chunk))
            self._queued += self.chunk

    def complete(self, size: int, sha256_hex: str) -> None:
        self.owner.submit(partial(self._finish, size, sha256_hex))

    def cancel(self) -> None:
        self.owner.cancel(self)

    # on the sender thread
    def _skipped(self) -> bool:
        """True when this job has nothing to do: the part failed or was given up, or another job failed (then
        this part fails with it)."""
        if self._error is None and self.owner.failure is not None:
            self._fail(self.owner.failure)
        return self._error is not None or self.cancelled

    @property
    def objects(self) -> S3Objects:
        objects = self.owner.objects
        assert objects is not None  # the sender's jobs run after its prepare job
        return objects

    def _send(self, offset: int, length: int) -> None:
        if self._skipped():
            return
        try:
            if self.upload_id is None:
                created = self.objects.client.create_multipart_upload(
                    Bucket=self.objects.bucket, Key=self.key, ChecksumAlgorithm=ALGORITHM)
                if not self.owner.started(self, created["UploadId"]):
                    return  # given up or stopped meanwhile: the new upload is already aborted
            self._send_chunk(offset, length)
        except BaseException as exc:  # kept for result(); the upload is aborted now, not left behind
            self._fail(exc)

    def _send_chunk(self, offset: int, length: int) -> None:
        """The file's bytes ``[offset, offset + length)`` as the next part: hashed in blocks, then sent from the
        file (boto3's own ``ReadFileChunk``), so a chunk never sits in memory whole."""
        digest = hashlib.sha256()
        buffer = self.owner.buffer
        with self.local.open("rb", buffering=0) as src:
            src.seek(offset)
            left = length
            while left and (got := src.readinto(buffer[:min(READ_BLOCK, left)])):
                digest.update(buffer[:got])
                self._whole.update(buffer[:got])
                left -= got
        self._digests.append(digest.digest())
        assert self.upload_id is not None
        with ReadFileChunk.from_filename(str(self.local), offset, length, enable_callbacks=False) as body:
            self._parts.append(self.objects.send_chunk(self.key, self.upload_id, len(self._digests), body,
                                                       self._digests[-1]))

    def _finish(self, size: int, sha256_hex: str) -> None:
        if self._skipped():
            return
        objects = self.objects
        try:
            if self.upload_id is None:  # smaller than a chunk: one PUT
                self._checksum = objects.put_whole(self.local, self.key, sha256_hex)
            else:
                if size > self._queued:
                    self._send_chunk(self._queued, size - self._queued)
                if self._whole.hexdigest() != sha256_hex:
                    raise StorageError(f"{self.local.name} changed on the local disk while it was uploaded (sha256 "
                                       f"{self._whole.hexdigest()[:12]}…, written {sha256_hex[:12]}…): nothing was "
                                       "purged, re-run")
                answer = objects.client.complete_multipart_upload(Bucket=objects.bucket, Key=self.key,
                                                                  UploadId=self.upload_id,
                                                                  MultipartUpload={"Parts": self._parts})
                composite = f"{b64(hashlib.sha256(b''.join(self._digests)).digest())}-{len(self._digests)}"
                self._checksum = objects.checked(answer, self.key, size, self.local.name, composite)
        except BaseException as exc:
            self._fail(exc)
            return
        self.done.set()

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        if self.owner.failure is None and not self.cancelled:  # a part given up fails nothing else
            self.owner.failure = exc
        if self.upload_id is not None:
            self.abort_upload(self.upload_id)
        self.done.set()

    def abort_upload(self, upload_id: str) -> None:
        if self.owner.objects is not None:
            self.owner.objects.abort(self.key, upload_id)

    # on the export's thread
    def result(self) -> str | None:
        self.done.wait()
        if self._error is not None:
            raise self._error
        return self._checksum


def _not_found(exc: ClientError) -> bool:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404 or \
        exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound")


def read_chunks(path: Path, size: int) -> Iterator[bytes]:
    with path.open("rb") as src:
        while data := src.read(size):
            yield data
