"""Redis 7 from Debian (``redis-server``) as the Celery broker of the distributed test.

Append-only file on, fsync on every write: a broker restart keeps every queued and unacknowledged
message, as a production broker must (docker-compose.yaml runs Redis the same way; docs/ha.md).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.services._proc import free_port, start, stop, wait_until


def _ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64).startswith(b"+PONG")


@dataclass
class Redis:
    base: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: scripts/install-system-deps.sh test "
                               "(apt-get install redis-server)")
        self.base.mkdir(parents=True, exist_ok=True)
        log = self.base / "redis.log"
        self.proc = start([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.base),
                           "--save", "", "--appendonly", "yes", "--appendfsync", "always",
                           "--daemonize", "no", "--protected-mode", "yes"], log)
        wait_until(lambda: _ping(self.port), 30, "Redis", log)

    def restart(self) -> None:
        """SIGTERM (Redis flushes its append-only file and exits), then start again on the same port."""
        assert self.proc is not None
        stop(self.proc, grace=20, sig=signal.SIGTERM)
        self.start()

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, grace=10)


def start_redis(base: Path) -> Redis:
    server = Redis(base)
    server.start()
    return server
