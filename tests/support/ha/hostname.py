"""``[core] hostname_callable`` for the failover test: a name per scheduler process.

Two schedulers on one machine would otherwise share a hostname, and the test could not
tell their ``job`` rows apart.
"""

from __future__ import annotations

import os
import socket


def from_env() -> str:
    return os.environ.get("MECCANO_HA_HOSTNAME") or socket.getfqdn()
