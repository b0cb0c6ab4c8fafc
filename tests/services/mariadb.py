"""MariaDB 10.11 as the MySQL IOTDB (``mariadbd`` from Debian, no systemd)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.services._proc import free_port, start, stop, wait_until

USER = "meccano"
PASSWORD = "s3cr3t-Db-Pa55"  # test-only; the tests check it never leaks


@dataclass
class MariaDB:
    proc: subprocess.Popen
    socket: Path
    port: int
    host: str = "127.0.0.1"
    user: str = USER
    password: str = PASSWORD
    argv: tuple[str, ...] = ()  # how it was started (restart)
    log: Path | None = None

    def sql(self, statement: str, database: str = "") -> str:
        out = subprocess.run(
            ["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "--batch", "-N",
             *([database] if database else []), "-e", statement],
            check=True, capture_output=True, text=True,
        )
        return out.stdout

    def create_database(self, name: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`;"
                 f"GRANT ALL ON `{name}`.* TO '{self.user}'@'127.0.0.1';"
                 f"GRANT ALL ON `{name}`.* TO '{self.user}'@'localhost';")

    def uri(self, database: str) -> str:
        from urllib.parse import quote

        return f"mysql://{self.user}:{quote(self.password, safe='')}@{self.host}:{self.port}/{database}"

    def stop(self) -> None:
        subprocess.run(["mariadb-admin", "--no-defaults", f"--socket={self.socket}", "-uroot", "shutdown"],
                       capture_output=True, timeout=30)
        stop(self.proc, grace=20)

    def ping(self) -> bool:
        return subprocess.run(["mariadb-admin", "--no-defaults", f"--socket={self.socket}", "-uroot", "ping"],
                              capture_output=True).returncode == 0

    def restart(self) -> None:
        """Shut the server down and start it again on the same data, socket and port (a server restart under
        its clients: every connection is lost)."""
        assert self.argv and self.log is not None
        self.stop()
        self.proc = start(list(self.argv), self.log)
        wait_until(self.ping, 60, "MariaDB (restart)", self.log)


def start_mariadb(base: Path, options: Sequence[str] = ()) -> MariaDB:
    """A fresh server under ``base``; ``options`` are extra ``mariadbd`` options (the benchmark's server settings)."""
    data, sock, log = base / "data", base / "mysqld.sock", base / "mariadb.log"
    base.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mariadb-install-db", "--no-defaults", "--user=root", f"--datadir={data}",
         "--auth-root-authentication-method=socket", "--skip-test-db"],
        check=True, capture_output=True,
    )
    port = free_port()
    argv = ("mariadbd", "--no-defaults", "--user=root", f"--datadir={data}", f"--socket={sock}",
            f"--port={port}", "--bind-address=127.0.0.1", f"--pid-file={base / 'mysqld.pid'}",
            "--skip-log-bin", "--innodb-buffer-pool-size=256M", "--max-connections=500",
            "--local-infile=0", *options)
    proc = start(list(argv), log)

    def ping() -> bool:
        return subprocess.run(["mariadb-admin", "--no-defaults", f"--socket={sock}", "-uroot", "ping"],
                              capture_output=True).returncode == 0

    wait_until(ping, 60, "MariaDB", log)
    db = MariaDB(proc=proc, socket=sock, port=port, argv=argv, log=log)
    db.sql(f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';"
           f"CREATE USER '{USER}'@'localhost' IDENTIFIED BY '{PASSWORD}';")
    return db
