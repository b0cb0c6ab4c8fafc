"""``migrate apply``: carry an original installation over, as ``migrate check`` reported it.

* Plugins that pass the contract (``unchanged`` or ``warning``) are copied into the plugins folder
  (``--to DIR``: ``DIR/meccano_plugins/``; else ``MECCANO_PLUGINS_DIR`` or the project's
  ``meccano_plugins/``), shadowed versions too (the same version wins there as in the original).
  A folder already there with the same files is skipped; a *different* plugin of the same
  ``name:version`` is never overwritten (the operator decides). Each copy is made in a hidden
  folder next to its place, then renamed: a crash leaves no half-copied plugin, and discovery
  skips the hidden leftover, which the next run removes.
  A copy holds content and plain permission bits only (never the owner, set-id or sticky bits);
  every entry is opened relative to its folder without following a link (links are left out),
  and a named pipe, device or socket refuses the plugin, naming the file.
* The configuration file (``DIR/config/config.yml``; else ``MECCANO_CONFIG`` or
  ``config/config.yml``) is written with every section of the original and the settings carried
  over; the variables of the variables file are folded in (they won over every section, so each
  section that sets the key gets the variable's value). Replaced and ignored keys are left out.
  Secrets are never written: the configuration loader reads no ``${...}`` references, and every
  secret has its environment variable, so the variables to set are printed instead. An existing
  different file is kept as ``config.yml.before-migrate`` (numbered when that exists) before the
  new one is put in place. While any setting is a problem, config.yml is not written.

A second run finds everything in place and changes nothing.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meccano.errors import UnsafeFile
from meccano.files.bounded import file_kind, read_bounded
from meccano.settings.config import config_file_path
from meccano.settings.plugins_folder import plugins_dir
from meccano.switchover.check import Installation
from meccano.switchover.report import EXIT_ACTION, EXIT_CLEAN
from meccano.switchover.settings_check import has_key_path

MAX_PLUGIN_FILES = 10_000
MAX_PLUGIN_BYTES = 512 * 1024 * 1024
TMP_PREFIX = ".migrate-"
PLAIN_BITS = 0o777  # read, write, execute for owner, group, others: never set-uid, set-gid or sticky


@dataclass(frozen=True)
class Target:
    """Where the installation goes: the plugins folder and the configuration file."""

    plugins: Path
    config: Path

    @classmethod
    def folder(cls, root: Path) -> Target:
        """``--to DIR``: ``DIR/meccano_plugins/`` and ``DIR/config/config.yml``."""
        return cls(root / "meccano_plugins", root / "config" / "config.yml")


def default_target() -> Target:
    """The folders this installation reads: ``MECCANO_PLUGINS_DIR`` (else ``meccano_plugins/``) and
    ``MECCANO_CONFIG`` (else ``config/config.yml``), as compose and the image set them."""

    return Target(plugins_dir(), config_file_path())


@dataclass
class Outcome:
    lines: list[str] = field(default_factory=list)
    changed: int = 0
    refused: int = 0
    overwrites: list[str] = field(default_factory=list)  # files a run replaces (kept as a backup): confirmed first

    @property
    def exit_code(self) -> int:
        return EXIT_ACTION if self.refused else EXIT_CLEAN


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class _Tree:
    """A plugin folder as read: relative path -> content (None for a folder), the plain permission bits of each
    file, and what was left out (links)."""

    content: dict[str, bytes | None] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)
    total: int = 0


def _add_file(fd: int, name: str, rel: str, tree: _Tree) -> None:
    tree.total += os.stat(name, dir_fd=fd, follow_symlinks=False).st_size
    if tree.total > MAX_PLUGIN_BYTES:
        raise ValueError(f"more than {MAX_PLUGIN_BYTES:,} bytes")
    try:
        tree.content[rel] = read_bounded(name, MAX_PLUGIN_BYTES, dir_fd=fd)
    except UnsafeFile as exc:  # swapped after the lstat: a link, a pipe
        raise UnsafeFile(f"{rel} {exc}") from None
    tree.modes[rel] = stat.S_IMODE(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode) & PLAIN_BITS


def _read_folder(fd: int, prefix: str, tree: _Tree) -> None:
    """Everything below the open folder ``fd``, each entry opened relative to its folder without following a link
    (a link, to a file or a folder, is left out: nothing outside the original installation is read); a named pipe,
    device or socket refuses the whole plugin (:class:`UnsafeFile` naming it)."""
    with os.scandir(fd) as scan:
        names = sorted(entry.name for entry in scan)
    for name in names:
        if len(tree.content) >= MAX_PLUGIN_FILES:
            raise ValueError(f"more than {MAX_PLUGIN_FILES:,} files")
        rel, mode = prefix + name, os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
        if stat.S_ISLNK(mode):
            tree.left_out.append(rel)
        elif stat.S_ISDIR(mode):
            tree.content[rel] = None
            sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
            try:
                _read_folder(sub, rel + "/", tree)
            finally:
                os.close(sub)
        elif stat.S_ISREG(mode):
            _add_file(fd, name, rel, tree)
        else:
            raise UnsafeFile(f"{rel} is {file_kind(mode)}; only regular files and folders are copied: remove it from "
                             "the original installation (or copy the plugin by hand without it), then re-run")


def _tree(root: Path) -> _Tree:
    """The plugin folder ``root`` (itself never a link), bounded in files and bytes."""
    tree = _Tree()
    fd = os.open(root, _DIR_FLAGS)
    try:
        _read_folder(fd, "", tree)
    finally:
        os.close(fd)
    return tree


def _write_tree(tree: _Tree, dest: Path) -> None:
    """Content and plain permission bits only: never the original's owner, set-id or sticky bits (a root
    ``migrate apply`` would otherwise make root-owned set-id files out of a hostile installation's)."""
    tmp = dest.parent / f"{TMP_PREFIX}{dest.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for rel, data in tree.content.items():
        if data is None:
            (tmp / rel).mkdir(parents=True, exist_ok=True)
            continue
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp / rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            os.fchmod(handle.fileno(), tree.modes[rel] & PLAIN_BITS)
    os.rename(tmp, dest)


def _existing_content(dest: Path) -> dict[str, bytes | None] | None:
    """What a plugin folder already in the target holds; None when it is not a plain, readable one."""
    try:
        return _tree(dest).content
    except (OSError, ValueError):
        return None


def _copy_plugin(folder: Path, dest_root: Path, dry_run: bool, outcome: Outcome) -> None:
    dest = dest_root / folder.name
    try:
        tree = _tree(folder)
    except UnsafeFile as exc:
        outcome.refused += 1
        outcome.lines.append(f"NOT COPIED plugins/{folder.name}: {exc}")
        return
    except (OSError, ValueError) as exc:
        outcome.refused += 1
        outcome.lines.append(f"NOT COPIED plugins/{folder.name}: cannot be read ({exc})")
        return
    note = f" (left out, not regular files: {', '.join(tree.left_out)})" if tree.left_out else ""
    if os.path.lexists(dest):
        if _existing_content(dest) == tree.content:
            outcome.lines.append(f"SKIPPED   plugins/{folder.name}: the same plugin is already in {dest_root}")
        else:
            outcome.refused += 1
            outcome.lines.append(f"REFUSED   plugins/{folder.name}: a different plugin {folder.name} is already in "
                                 f"{dest_root}; never overwritten: give one of them another version (folder, "
                                 "plugin.json and file names), or remove the one there, then re-run")
        return
    outcome.changed += 1
    if dry_run:
        outcome.lines.append(f"WOULD COPY plugins/{folder.name} -> {dest}{note}")
        return
    dest_root.mkdir(parents=True, exist_ok=True)
    _write_tree(tree, dest)
    outcome.lines.append(f"COPIED    plugins/{folder.name} -> {dest}{note}")


def _remove_leftovers(dest_root: Path) -> None:
    """Hidden copies a crashed run left behind (discovery skips them; they are never a plugin)."""
    if dest_root.is_dir():
        for entry in os.scandir(dest_root):
            if entry.name.startswith(TMP_PREFIX) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)


def copy_plugins(installation: Installation, target: Target, dry_run: bool, outcome: Outcome) -> None:
    dest_root = target.plugins
    if not dry_run:
        _remove_leftovers(dest_root)
    for item in installation.report.plugins:
        if item.status == "change":
            outcome.refused += 1
            outcome.lines.append(f"NOT COPIED plugins/{item.folder}: needs a change first (see migrate check)")
            continue
        _copy_plugin(installation.path / "plugins" / item.folder, dest_root, dry_run, outcome)


def _put(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def new_config(installation: Installation) -> tuple[dict[str, Any], list[str]]:
    """(the sections to write, the secret variables to set in the new environment)."""
    sections: dict[str, dict[str, Any]] = {name: {} for name in installation.raw} or {"default": {}}
    sections.setdefault("default", {})
    secrets: dict[str, list[str]] = {}
    for found in installation.found:
        if found.secret_var:
            where = f"{found.item.source} {found.item.key}" if found.section else found.item.source
            secrets.setdefault(found.secret_var, []).append(where)
        if found.item.status == "problem" or not found.path:
            continue
        if found.section is not None:
            _put(sections[found.section], found.path, found.value)
    for found in installation.found:  # the variables won over every section: fold them in last
        if found.section is None and found.path and found.item.status != "problem":
            for name, body in sections.items():
                if name == "default" or has_key_path(body, found.path):
                    _put(body, found.path, found.value)
    ordered = {"default": sections.pop("default"), **sections}
    return ordered, [f"{var} (from {', '.join(where)})" for var, where in sorted(secrets.items())]


HEADER = ("# Written by `python -m meccano migrate apply` from the original installation {source}.\n"
          "# Secrets are never written here: set them as environment variables (printed by the command).\n"
          "# Every key, its variable and its default: docs/configuration.md; check with `meccano config show`.\n")


def _config_text(installation: Installation, sections: dict[str, Any]) -> str:
    import yaml  # lazy: yaml costs 9 ms at import (python -X importtime)

    body: str = yaml.safe_dump(sections, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return HEADER.format(source=os.path.abspath(installation.path)) + body


def _backup_name(cfg: Path) -> Path:
    candidate = cfg.with_name(cfg.name + ".before-migrate")
    number = 1
    while os.path.lexists(candidate):
        candidate = cfg.with_name(f"{cfg.name}.before-migrate.{number}")
        number += 1
    return candidate


def write_config(installation: Installation, target: Target, dry_run: bool, outcome: Outcome) -> None:
    cfg = target.config
    problems = sum(s.status == "problem" for s in installation.report.settings)
    if problems:
        outcome.refused += 1
        outcome.lines.append(f"NOT WRITTEN {cfg}: {problems} setting(s) are a problem (see migrate check); fix them in "
                             "the original and re-run")
        return
    sections, secrets = new_config(installation)
    text = _config_text(installation, sections)
    keys = sum(1 for f in installation.found if f.path and f.item.status != "problem")
    current = cfg.read_text(encoding="utf-8") if cfg.is_file() and not cfg.is_symlink() else None
    if current == text:
        outcome.lines.append(f"UNCHANGED {cfg}: already holds the settings carried over")
    else:
        outcome.changed += 1
        verb = "WOULD WRITE" if dry_run else "WROTE"
        backup = _backup_name(cfg) if os.path.lexists(cfg) else None
        if not dry_run:
            cfg.parent.mkdir(parents=True, exist_ok=True)
            tmp = cfg.with_name(f"{TMP_PREFIX}{cfg.name}")
            tmp.write_text(text, encoding="utf-8")
            if backup is not None:
                os.rename(cfg, backup)
            os.replace(tmp, cfg)
        if backup is not None:
            outcome.overwrites.append(str(cfg))
        kept = f"; the file there kept as {backup.name}" if backup else ""
        outcome.lines.append(f"{verb} {cfg}: sections {', '.join(sections)}; {keys} settings carried over{kept}")
    for line in secrets:
        outcome.lines.append(f"SET       {line}: a secret, set it in the environment of the Airflow components")


def apply_installation(installation: Installation, target: Target, dry_run: bool = False) -> Outcome:
    outcome = Outcome()
    if dry_run:
        outcome.lines.append("dry run: nothing is changed")
    copy_plugins(installation, target, dry_run, outcome)
    write_config(installation, target, dry_run, outcome)
    verb = "would change" if dry_run else "changed"
    outcome.lines.append(f"apply: {outcome.changed} {verb}, {outcome.refused} left for you (see above)"
                         if outcome.changed or outcome.refused else "apply: nothing to change; all in place")
    return outcome
