"""Finds plugin folders under ``meccano_plugins/`` and decides which version is active.

Two folders with the same name: the highest valid version is the DAG, lower valid
versions are *shadowed* (reported, not dropped), invalid ones are reported as invalid.
Entries that are not plugin folders are *skipped* and listed with the reason
(:data:`SKIP_RULE`): nothing in the folder goes unmentioned.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from meccano.contract.manifest import PluginLoad, load_plugin
from meccano.files.bounded import inside
from meccano.problems import Problem
from meccano.settings.plugins_folder import classify_entry, plugins_dir

log = logging.getLogger(__name__)

SKIP_RULE = ("entries whose name starts with '.' or '_' (e.g. __pycache__, .git) and plain files are skipped; "
             "every other entry is a plugin folder")


@dataclass(frozen=True)
class Shadowed:
    load: PluginLoad
    by: str  # the plugin id that wins


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: str


@dataclass
class Catalog:
    root: Path
    active: list[PluginLoad] = field(default_factory=list)
    shadowed: list[Shadowed] = field(default_factory=list)
    invalid: list[PluginLoad] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def all(self) -> list[PluginLoad]:
        return [*self.active, *(s.load for s in self.shadowed), *self.invalid]


def _entries(root: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(root) as entries:
            return list(entries)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:  # e.g. no permission: no plugin can be read, but the DAG file must still load
        log.error("Meccano: cannot list the plugins folder %s: %s", root, exc.strerror or exc)
        return []


def scan(root: Path, name: str | None = None) -> tuple[list[Path], list[Skipped]]:
    """(plugin folders, skipped entries) below ``root``, sorted by name.

    With ``name``, only the folders of that plugin (``name:*``): used when a task runs so
    that only its own plugin is read. Symlinked folders are returned: :func:`load_plugin`
    refuses those that lead out of ``root``.
    """
    folders, skipped = [], []
    for entry in _entries(root):
        if name is not None and entry.name.partition(":")[0] != name:
            continue
        why = classify_entry(entry)
        if why is None:
            folders.append(entry.name)
        else:
            skipped.append(Skipped(entry.name, why))
    return [root / n for n in sorted(folders)], sorted(skipped, key=lambda s: s.name)


def plugin_folders(root: Path, name: str | None = None) -> list[Path]:
    """Plugin folders below ``root`` (hidden and ``_``-prefixed entries, files and links out of it skipped)."""
    return [f for f in scan(root, name)[0] if not f.is_symlink() or inside(f, root)]


def _safe_load(folder: Path, root: Path) -> PluginLoad:
    try:
        return load_plugin(folder, root)
    except BaseException as exc:  # noqa: BLE001 - even a MemoryError of one folder stays in that folder
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return PluginLoad(folder, None, (Problem("plugin.json", f"could not be read: {type(exc).__name__}",
                                                 within=folder.name),))


def discover(root: Path | None = None, name: str | None = None) -> Catalog:
    root = root or plugins_dir()
    catalog = Catalog(root=root)
    by_name: dict[str, list[PluginLoad]] = {}
    folders, catalog.skipped = scan(root, name)
    for folder in folders:
        load = _safe_load(folder, root)
        if load.valid and load.manifest is not None:
            by_name.setdefault(load.manifest.name, []).append(load)
        else:
            catalog.invalid.append(load)
    for plugin in sorted(by_name):  # active in name order
        loads = by_name[plugin]
        if len(loads) > 1:
            loads.sort(key=lambda p: (p.manifest.version_key, p.folder.name) if p.manifest else (), reverse=True)
        winner, *losers = loads
        catalog.active.append(winner)
        if losers:
            winner_id = winner.manifest.plugin if winner.manifest else "?"
            catalog.shadowed.extend(Shadowed(p, winner_id) for p in losers)
    return catalog
