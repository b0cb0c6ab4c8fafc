"""Settings of the original ServiceManager that are accepted but replaced by something else.

None of them is silently dropped: each one that is set (environment variable or
``config.yml`` key) is logged once per process as a warning naming it and what replaces
it, and ``python -m meccano config show`` lists it under "ignored".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("meccano.settings.config")

_HA = ("Airflow's scheduler HA replaces the MIRROR/PORT master-slave pair: run two or more schedulers on "
       "one PostgreSQL metadata database (docs/ha.md)")
_PLUGIN = "the schedule in the plugin.json of {plugin} (evaluated in the configured timezone)"

# variable -> (YAML path, what replaces it)
IGNORED: dict[str, tuple[tuple[str, ...], str]] = {
    "MIRROR": (("mirror",), _HA),
    "PORT": (("port",),
             _HA + "; the web console reads GET /plugins through the load balancer (docs/switching-over.md)"),
    "SCHEDULER_MONITOR": (("scheduler", "monitor"),
                          "nothing: there is no master election; scheduler liveness is Airflow's heartbeat "
                          "(/api/v2/monitor/health)"),
    "SCHEDULER_DEVICES": (("scheduler", "devices"),
                          "WARNINGLIMIT (deviceHealth runs every WARNINGLIMIT minutes) and "
                          + _PLUGIN.format(plugin="deviceAlert:1.0")),
    "SCHEDULER_STATISTICS": (("scheduler", "statistics"), _PLUGIN.format(plugin="sensorStatistics:1.0")),
    "SCHEDULER_EXPORT": (("scheduler", "export"), _PLUGIN.format(plugin="s3_export:1.0")),
    "SCHEDULER_HISTORYSTATUS": (("scheduler", "historyStatus"), _PLUGIN.format(plugin="historyStatus:1.0")),
}


@dataclass(frozen=True)
class Ignored:
    name: str  # the environment variable
    key: str  # its YAML key
    source: str
    replaced_by: str

    def __str__(self) -> str:
        return f"{self.name} ({self.key}, from {self.source}) is ignored: {self.replaced_by}"


def _lookup(tree: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    node: Any = tree
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return node is not None and node != ""


def ignored_settings(merged: Mapping[str, Any], env: Mapping[str, str], yaml_source: str) -> tuple[Ignored, ...]:
    """The replaced settings that are set, each warned about once per process."""
    found = []
    for var, (path, replaced_by) in IGNORED.items():
        if env.get(var):
            source = f"environment variable {var}"
        elif _lookup(merged, path):
            source = yaml_source
        else:
            continue
        found.append(Ignored(var, ".".join(path), source, replaced_by))
    for item in found:
        _warn_once(item)
    return tuple(found)


_WARNED: set[tuple[str, str]] = set()


def _warn_once(item: Ignored) -> None:
    if (item.name, item.source) not in _WARNED:
        _WARNED.add((item.name, item.source))
        log.warning("setting %s", item)
