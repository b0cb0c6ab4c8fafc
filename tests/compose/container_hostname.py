"""``[core] hostname_callable`` for containers on the host network (tests/compose/host-network.yaml only).

On Docker's host network every container of a scaled service shares the machine's hostname, so Celery
workers scaled with ``--scale worker=N`` would record the same ``hostname`` on their task instances and
the test could not tell which one ran a task. Docker bind-mounts ``/etc/hostname`` from the container's
own folder, whose name is the container id: that id is unique per container and is what Docker's
bridge network would have made the hostname.
"""

from __future__ import annotations

import re
import socket

_CONTAINER_FOLDER = re.compile(r"/containers/([0-9a-f]{64})/hostname ")


def container_id() -> str:
    """``worker-<first 12 hex digits of the container id>``, else the machine's FQDN (outside Docker)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as mounts:
            found = _CONTAINER_FOLDER.search(mounts.read())
    except OSError:
        found = None
    return f"worker-{found.group(1)[:12]}" if found else socket.getfqdn()
