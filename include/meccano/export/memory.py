"""Memory the export has freed handed back to the OS (glibc's ``malloc_trim``), once, where it pays.

Setting up a boto3 S3 client reads botocore's service model and endpoint rules: megabytes of JSON decompressed,
parsed and freed. glibc keeps freed memory in the arena of the thread that allocated it, resident, until that
arena's top is free, and the parsed model stays allocated above it. The export sets up its client on the sender
thread (:class:`meccano.export.s3objects.PartStreams`, while the first rows are read), whose arena then held
10-13 MB that nothing used again: the 5-day benchmark's own peak was 51-55 MB, with one ``malloc_trim`` after the
set-up 41-44 MB, for about 1 ms (bench/README.md, "Memory").

Measured and rejected: fixing glibc's mmap threshold (36-38 MB, but every 1 MB block of CSV then mapped and
faulted in afresh: 10-20 % more CPU for the export) and trimming every few blocks (41-43 MB, 0.3-0.5 s more CPU).
Where the C library is not glibc (musl, macOS) nothing is done.
"""

from __future__ import annotations

import ctypes
import os


def glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):  # not the GNU C library
        return False


def release_freed_memory() -> bool:
    """Return the free pages of every malloc arena to the OS; False where the C library is not glibc."""
    if not glibc():
        return False
    ctypes.CDLL(None).malloc_trim(0)
    return True
