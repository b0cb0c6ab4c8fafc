"""Run the export's CPU work below the database's priority.

When the IOTDB shares a host with the worker (the original ServiceManager ran next to
MySQL; so do the benchmark and small installations), the export's reading and compression
compete for the same cores as the database thread that serves it and the gateway's inserts.
Lowered to nice 10, they take what the server leaves: the server's thread, the slowest
stage of the pipeline, keeps a whole core, and the gateway keeps its latency. On a separate
host this changes nothing. Linux gives each thread its own nice value; elsewhere the work
simply runs at the process's priority.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

T = TypeVar("T")
EXPORT_NICE = 10


def lower_this_thread(steps: int = EXPORT_NICE) -> None:
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + steps))
    except (AttributeError, OSError):
        pass


def run_lowered(work: Callable[[], T], name: str) -> T:
    """``work()`` on a daemon thread at lower priority; its result or its exception, here.

    A daemon thread, so that a task killed while waiting here is not held up at exit by the
    rest of the read.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        lower_this_thread()
        try:
            box["value"] = work()
        except BaseException as exc:  # handed back to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return cast(T, box["value"])
