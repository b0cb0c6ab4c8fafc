"""``MYSQL_CONNECTIONLIMIT``: how many IOTDB tasks run at once across the whole cluster.

The original capped its one process's MySQL connection pool at ``connectionLimit``; every
plugin ran in that process, so the limit bounded the ServiceManager's load on the
gateway's database. Here plugins run as tasks on any number of workers, so the same
bound is an Airflow pool, ``iotdb``, with ``connectionLimit`` slots: every plugin task
takes one slot (factory.py), whichever worker it runs on. ``python -m meccano pool sync``
creates or resizes it (``airflow pools set``, Airflow's public CLI); the demo and the
compose ``airflow-init`` job run it at start.
"""

from __future__ import annotations

import subprocess
import sys

from meccano.settings.config import Settings

IOTDB_POOL = "iotdb"


def pool_command(settings: Settings) -> list[str]:
    """``airflow pools set iotdb <connectionLimit> <description>``."""
    return [sys.executable, "-m", "airflow", "pools", "set", IOTDB_POOL, str(settings.mysql.connection_limit),
            "Meccano IOTDB tasks at once, cluster-wide (MYSQL_CONNECTIONLIMIT / mysql.connectionLimit)"]


def sync_pool(settings: Settings, timeout: float = 180) -> None:
    """Create or resize the pool; raises ``CalledProcessError`` with Airflow's message on failure."""
    subprocess.run(pool_command(settings), check=True, timeout=timeout, stdout=subprocess.DEVNULL)
