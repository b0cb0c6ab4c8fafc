"""Finds plugin folders under ``meccano_plugins/`` and decides which version is active.

Two folders with the same name: the highest valid version is the DAG, lower valid
versions are *shadowed* (reported, not dropped), invalid ones are reported as invalid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from meccano.config import PROJECT_ROOT
from meccano.manifest import PluginLoad, load_plugin

DEFAULT_PLUGINS_DIR = PROJECT_ROOT / "meccano_plugins"


def plugins_dir() -> Path:
    return Path(os.environ.get("MECCANO_PLUGINS_DIR") or DEFAULT_PLUGINS_DIR)


@dataclass(frozen=True)
class Shadowed:
    load: PluginLoad
    by: str  # the plugin id that wins


@dataclass
class Catalog:
    root: Path
    active: list[PluginLoad] = field(default_factory=list)
    shadowed: list[Shadowed] = field(default_factory=list)
    invalid: list[PluginLoad] = field(default_factory=list)

    @property
    def all(self) -> list[PluginLoad]:
        return [*self.active, *(s.load for s in self.shadowed), *self.invalid]

    def find(self, name: str) -> PluginLoad | None:
        return next((p for p in self.active if p.manifest and p.manifest.name == name), None)


def plugin_folders(root: Path, name: str | None = None) -> list[Path]:
    """Plugin folders below ``root`` (hidden and ``_``-prefixed entries skipped).

    With ``name``, only the folders of that plugin (``name:*``): used when a task runs
    so that only its own plugin is read.
    """
    try:
        entries = os.scandir(root)
    except FileNotFoundError:
        return []
    with entries:
        names = [e.name for e in entries
                 if e.is_dir() and not e.name.startswith((".", "_"))
                 and (name is None or e.name.partition(":")[0] == name)]
    return [root / n for n in sorted(names)]


def discover(root: Path | None = None, name: str | None = None) -> Catalog:
    root = root or plugins_dir()
    catalog = Catalog(root=root)
    by_name: dict[str, list[PluginLoad]] = {}
    for folder in plugin_folders(root, name):
        load = load_plugin(folder)
        if load.valid and load.manifest is not None:
            by_name.setdefault(load.manifest.name, []).append(load)
        else:
            catalog.invalid.append(load)
    for loads in by_name.values():
        loads.sort(key=lambda p: p.manifest.version_key if p.manifest else (), reverse=True)
        winner, *losers = loads
        catalog.active.append(winner)
        winner_id = winner.manifest.plugin if winner.manifest else "?"
        catalog.shadowed.extend(Shadowed(p, winner_id) for p in losers)
    catalog.active.sort(key=lambda p: p.manifest.name if p.manifest else "")
    return catalog
