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

from meccano.contract.manifest import PluginLoad, PluginProblem, load_plugin
from meccano.errors import PluginsFolderError
from meccano.files.bounded import inside
from meccano.settings.config import PROJECT_ROOT

log = logging.getLogger(__name__)

CHECKOUT_PLUGINS_DIR = PROJECT_ROOT / "meccano_plugins"  # the shipped plugins, in a checkout
SKIP_RULE = ("entries whose name starts with '.' or '_' (e.g. __pycache__, .git) and plain files are skipped; "
             "every other entry is a plugin folder")


PLUGINS_SETTING = "MECCANO_PLUGINS_DIR"
INSTALL_COMMAND = "python -m meccano install-dags"


def default_plugins_dir() -> Path:
    """The plugins folder when ``MECCANO_PLUGINS_DIR`` is unset: ``meccano_plugins/`` of the checkout the package
    runs from (an editable install, ``make demo``, the tests), else ``$AIRFLOW_HOME/meccano_plugins`` (an
    installed package: the image, whose AIRFLOW_HOME is /opt/airflow, or an Airflow of the user's own, where
    ``python -m meccano install-dags`` puts the shipped plugins)."""
    if (PROJECT_ROOT / "include" / "meccano").is_dir():
        return CHECKOUT_PLUGINS_DIR
    from meccano.settings.hosts import airflow_home

    return airflow_home() / "meccano_plugins"


def plugins_dir() -> Path:
    """The plugins folder: the setting ``MECCANO_PLUGINS_DIR``, else :func:`default_plugins_dir`."""
    return Path(os.environ.get(PLUGINS_SETTING) or default_plugins_dir())


def plugins_dir_source() -> str:
    """How :func:`plugins_dir` was chosen, as an error message names it."""
    if os.environ.get(PLUGINS_SETTING):
        return f"set by {PLUGINS_SETTING}"
    return f"the default, {PLUGINS_SETTING} is unset"


FOLDER_FIX = (f"set {PLUGINS_SETTING} to the folder of the plugin folders, or copy the shipped plugins there "
              f"with `{INSTALL_COMMAND}`")


def folder_problem(root: Path | None = None) -> tuple[Path, str] | None:
    """(the folder, why it holds no plugin: missing, not a folder, unreadable, empty); None when it holds one.

    Without ``root``, the configured folder, and the reason says how it was chosen. The DAG file, ``db check``,
    ``plugins list`` and the Meccano page say it: a wrong folder must never look like "no plugins"."""
    configured = root is None
    root = plugins_dir() if root is None else root
    try:
        with os.scandir(root) as entries:
            if any(_classify(entry) is None for entry in entries):
                return None
        why = "holds no plugin folder"
    except FileNotFoundError:
        why = "does not exist"
    except NotADirectoryError:
        why = "is not a folder"
    except OSError as exc:
        why = f"cannot be listed ({exc.strerror or exc})"
    return root, f"{why} ({plugins_dir_source()})" if configured else why


def folder_message(root: Path | None = None) -> str | None:
    """:func:`folder_problem` as one sentence with the fix; None when the folder holds a plugin."""
    problem = folder_problem(root)
    return None if problem is None else f"the plugins folder {problem[0]} {problem[1]}. Fix: {FOLDER_FIX}"


def require_plugins_folder(root: Path | None = None) -> None:
    """Raise :class:`PluginsFolderError` when the plugins folder holds no plugin (the DAG file's first step: Airflow
    then lists an import error naming the folder, instead of a file that yields no DAG)."""
    message = folder_message(root)
    if message:
        raise PluginsFolderError(f"Meccano: {message}")


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


def _classify(entry: os.DirEntry[str]) -> str | None:
    """None for a plugin folder (or a symlink, judged by load_plugin), else why it is skipped."""
    if entry.name.startswith((".", "_")):
        return "hidden or private name (starts with '.' or '_')"
    try:
        if entry.is_symlink() or entry.is_dir(follow_symlinks=False):
            return None
    except OSError as exc:
        return f"cannot be inspected: {exc.strerror or exc}"
    return "not a folder"


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
        why = _classify(entry)
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
        return PluginLoad(folder, None, (PluginProblem(folder.name, "plugin.json",
                                                       f"could not be read: {type(exc).__name__}"),))


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
    for loads in by_name.values():
        loads.sort(key=lambda p: (p.manifest.version_key, p.folder.name) if p.manifest else (), reverse=True)
        winner, *losers = loads
        catalog.active.append(winner)
        winner_id = winner.manifest.plugin if winner.manifest else "?"
        catalog.shadowed.extend(Shadowed(p, winner_id) for p in losers)
    catalog.active.sort(key=lambda p: p.manifest.name if p.manifest else "")
    return catalog
