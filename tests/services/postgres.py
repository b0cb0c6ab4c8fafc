"""PostgreSQL 15 as Airflow's metadata database for the scheduler-HA tests."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.services._proc import free_port, wait_until

# Airflow's metadata DB setting, as in docker-compose.yaml (docs/ha.md): a SIGKILLed scheduler's open
# transaction would otherwise keep its row locks for as long as its LocalExecutor workers (forked with
# the connection's socket) live, and the survivor would skip the locked rows forever.
IDLE_IN_TRANSACTION_TIMEOUT = "60s"

BIN = Path("/usr/lib/postgresql/15/bin")
PASSWORD = "airflow-Pg-pass"


@dataclass
class Postgres:
    data: Path
    port: int
    password: str = PASSWORD

    def uri(self, database: str = "airflow") -> str:
        return f"postgresql+psycopg2://airflow:{self.password}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        return subprocess.run(["runuser", "-u", "postgres", "--", str(BIN / "psql"), "-h", "127.0.0.1",
                               "-p", str(self.port), "-U", "postgres", "-d", database, "-tAc", sql],
                              check=True, capture_output=True, text=True,
                              env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                                   "PGPASSWORD": self.password}).stdout

    def stop(self) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(BIN / "pg_ctl"), "-D", str(self.data),
                        "-m", "fast", "stop"], capture_output=True, timeout=60)


def start_postgres(base: Path) -> Postgres:
    base.mkdir(parents=True, exist_ok=True)
    # the postgres user must be able to reach ``base``: a mkdtemp() parent is 0700 root
    base.parent.chmod(base.parent.stat().st_mode | 0o711)
    subprocess.run(["chown", "-R", "postgres", str(base)], check=True)
    data, pwfile = base / "pgdata", base / "pw"
    pwfile.write_text(PASSWORD)
    subprocess.run(["chown", "postgres", str(pwfile)], check=True)
    subprocess.run(["runuser", "-u", "postgres", "--", str(BIN / "initdb"), "-D", str(data), "-U", "postgres",
                    "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"],
                   check=True, capture_output=True)
    port = free_port()
    subprocess.run(["runuser", "-u", "postgres", "--", str(BIN / "pg_ctl"), "-D", str(data), "-w",
                    "-l", str(base / "pg.log"), "-o",
                    f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c max_connections=200 "
                    f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT}",
                    "start"], check=True, capture_output=True)
    pg = Postgres(data=data, port=port)
    wait_until(lambda: bool(pg.psql("SELECT 1")), 30, "PostgreSQL", base / "pg.log")
    pg.psql(f"CREATE USER airflow PASSWORD '{PASSWORD}'")
    pg.psql("CREATE DATABASE airflow OWNER airflow")
    return pg
