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
(:func:`meccano.export.verify.verify_day`).

**Nothing half-uploaded is left.** A multipart upload that fails (S3's error, a reset connection, the task's
time limit: anything, ``BaseException`` included) is aborted before the error goes on. An attempt killed
outright cannot abort its own upload: the next export attempt sweeps the incomplete uploads under the folders
of the days it exports, and any under the export's root older than ``SWEEP_AGE_SECONDS`` (:func:`sweep_uploads`).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from meccano.errors import StorageError

ALGORITHM = "SHA256"
SWEEP_AGE_SECONDS = 3600  # an incomplete upload under the export root, outside today's days, older than this


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def sha256_b64(hex_digest: str) -> str:
    """S3's form (base64) of a hex SHA-256."""
    return b64(bytes.fromhex(hex_digest))


class S3Objects:
    """One bucket of the export target through boto3 (the Airflow connection's client)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client, self.bucket = client, bucket

    def put(self, local: Path, key: str, sha256_hex: str, chunk: int, concurrency: int) -> str | None:
        """Upload ``local`` to ``key``; the checksum S3 stored (``sha256:<base64>[-N]``), or None when the
        store keeps none (its size was checked instead)."""
        size = local.stat().st_size
        if size < 2 * chunk:
            with local.open("rb") as body:
                answer = self.client.put_object(Bucket=self.bucket, Key=key, Body=body,
                                                ChecksumSHA256=sha256_b64(sha256_hex))
            expected = sha256_b64(sha256_hex)
        else:
            answer, expected = self._multipart(local, key, sha256_hex, chunk, concurrency)
        stored = answer.get("ChecksumSHA256")
        if stored is None:  # no checksums in this store: at least the size
            self._check_size(key, size, local.name)
            return None
        if stored != expected:
            raise StorageError(f"s3://{self.bucket}/{key} has checksum {stored} after the upload of {local.name}, "
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
            parts, digests = self._send_chunks(pool, local, key, upload_id, sha256_hex, chunk, concurrency)
            answer = self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
        except BaseException:  # S3's error, a reset, the task's time limit: the upload never stays behind
            pool.shutdown(wait=False, cancel_futures=True)
            self.abort(key, upload_id)
            raise
        pool.shutdown(wait=True)
        composite = b64(hashlib.sha256(b"".join(digests)).digest())
        return answer, f"{composite}-{len(digests)}"

    def _send_chunks(self, pool: ThreadPoolExecutor, local: Path, key: str, upload_id: str, sha256_hex: str,
                     chunk: int, concurrency: int) -> tuple[list[dict[str, Any]], list[bytes]]:
        """Read ``local`` in order (hashing it whole), each chunk sent with its digest; at most
        ``concurrency`` chunks in flight (memory: that many chunks)."""
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
            pending.append(pool.submit(self._send_chunk, key, upload_id, number, data, digest))
        done += [f.result() for f in pending]
        if whole.hexdigest() != sha256_hex:
            raise StorageError(f"{local.name} changed on the local disk after it was written (sha256 "
                               f"{whole.hexdigest()[:12]}…, written {sha256_hex[:12]}…): nothing was purged, re-run")
        return done, digests

    def _send_chunk(self, key: str, upload_id: str, number: int, data: bytes, digest: bytes) -> dict[str, Any]:
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
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise
        checksum = head.get("ChecksumSHA256")
        return int(head["ContentLength"]), (f"sha256:{checksum}" if checksum else None)

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


def read_chunks(path: Path, size: int) -> Iterator[bytes]:
    with path.open("rb") as src:
        while data := src.read(size):
            yield data
