"""Safe resolution of file names that arrive in URLs.

A name from a URL is never joined to a folder as is: plugin folders are looked up by
exact name among the folders that exist, and an asset path must be plain parts (no
``..``, no absolute path, no backslash, no hidden files) that, once symlinks are
resolved, still lie inside the plugin's ``assets/`` folder.
"""

from __future__ import annotations

from pathlib import Path

from meccano.discovery import plugin_folders, plugins_dir


def plugin_folder(plugin_id: str, root: Path | None = None) -> Path | None:
    """The folder named exactly ``plugin_id`` under the plugins folder, or None."""
    for folder in plugin_folders(root or plugins_dir()):
        if folder.name == plugin_id:
            return folder
    return None


def asset_path(folder: Path, relative: str) -> Path | None:
    """``folder/assets/relative`` if it is a regular file inside ``assets/``, else None."""
    if not relative or "\\" in relative or "\x00" in relative or relative.startswith("/"):
        return None
    parts = relative.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return None
    base = (folder / "assets").resolve()
    candidate = base.joinpath(*parts).resolve()
    if not candidate.is_relative_to(base) or not candidate.is_file():
        return None
    return candidate
