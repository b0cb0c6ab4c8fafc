"""Safe resolution of file names that arrive in URLs.

A name from a URL is never joined to a folder as is: plugin folders are looked up by
exact name among the folders that exist, and an asset path must be plain parts (no
``..``, no absolute path, no backslash, no hidden files, at most 64 parts). The file is
then opened component by component without following any symlink
(:mod:`meccano.files.guard`): a symlinked ``assets/`` folder, a symlinked sub-folder or file
inside it is refused, and so is anything the OS refuses (a name too long): all are 404.
"""

from __future__ import annotations

from pathlib import Path

from meccano.files.guard import plain_parts, read_beneath
from meccano.plugins.discovery import plugin_folders
from meccano.settings.plugins_folder import plugins_dir

MAX_ASSET_BYTES = 20 * 1024 * 1024


def plugin_folder(plugin_id: str, root: Path | None = None) -> Path | None:
    """The folder named exactly ``plugin_id`` under the plugins folder, or None."""
    for folder in plugin_folders(root or plugins_dir()):
        if folder.name == plugin_id:
            return folder
    return None


def read_asset(folder: Path, relative: str) -> bytes | None:
    """The bytes of ``folder/assets/relative`` if it is a regular file reached without a symlink."""
    parts = plain_parts(relative)
    if parts is None:
        return None
    try:
        return read_beneath(folder, ["assets", *parts], MAX_ASSET_BYTES)
    except FileNotFoundError:
        return None
