"""Process helpers shared by the service starters."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int, pick: Callable[[], int] | None = None) -> list[int]:
    """``count`` distinct free ports (``pick``: how one is found, ``free_port`` by default). ``free_port`` called
    several times in a row may hand out the same port twice (it is free again once its socket closes): two
    servers of one test then share a port, and one of them answers for the other."""
    ports: list[int] = []
    while len(ports) < count:
        port = (pick or free_port)()
        if port not in ports:
            ports.append(port)
    return ports


def wait_until(check: Callable[[], bool], timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.2)
    tail = ""
    if log and log.exists():
        tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    raise RuntimeError(f"{what} did not come up within {timeout:.0f}s{tail}")


def start(argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen:
    fh = open(log, "ab")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                            start_new_session=True)


def stop(proc: subprocess.Popen, grace: float = 10.0, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)
