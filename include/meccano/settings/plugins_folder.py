"""The plugins folder (``MECCANO_PLUGINS_DIR``): where it is for each way of deploying, and why a folder that holds
no plugin is named loudly (the DAG file, ``db check``, ``plugins list`` and the Meccano page say it)."""

from __future__ import annotations

import os
from pathlib import Path

from meccano.errors import PluginsFolderError
from meccano.settings.config import PROJECT_ROOT

CHECKOUT_PLUGINS_DIR = PROJECT_ROOT / "meccano_plugins"  # the shipped plugins, in a checkout
PLUGINS_SETTING = "MECCANO_PLUGINS_DIR"
INSTALL_COMMAND = "python -m meccano install-dags"


def default_plugins_dir() -> Path:
    """The plugins folder when ``MECCANO_PLUGINS_DIR`` is unset: ``meccano_plugins/`` of the checkout the package
    runs from (an editable install, ``make demo``, the tests), else ``$AIRFLOW_HOME/meccano_plugins`` (an
    installed package: the image, whose AIRFLOW_HOME is /opt/airflow, or an Airflow of the user's own, where
    ``python -m meccano install-dags`` puts the shipped plugins)."""
    if (PROJECT_ROOT / "include" / "meccano").is_dir():
        return CHECKOUT_PLUGINS_DIR
    # lazy: off the DAG parse (bench_parse: at the top with its neighbours, +8% on 1,000 plugins)
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
            if any(classify_entry(entry) is None for entry in entries):
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


def classify_entry(entry: os.DirEntry[str]) -> str | None:
    """None for a plugin folder (or a symlink, judged by load_plugin), else why it is skipped."""
    if entry.name.startswith((".", "_")):
        return "hidden or private name (starts with '.' or '_')"
    try:
        if entry.is_symlink() or entry.is_dir(follow_symlinks=False):
            return None
    except OSError as exc:
        return f"cannot be inspected: {exc.strerror or exc}"
    return "not a folder"
