"""``migrate check``: read an original installation (``config/config.yml``, ``plugins/``, and the
variables file the operator names) and build the :class:`~meccano.switchover.report.Report`.

Nothing is executed and nothing is written. Files are read bounded: the configuration only when
it is a regular file inside the installation (a link that stays inside is followed), plugin
folders through the contract's own reader, which never follows a link out of ``plugins/``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meccano.errors import SwitchOverError, UnsafeFile
from meccano.files.bounded import inside, read_bounded
from meccano.plugins.discovery import Catalog
from meccano.settings.config import MAX_CONFIG_BYTES
from meccano.switchover.envfile import EnvFile, read_env_file
from meccano.switchover.plugins_check import plugin_items
from meccano.switchover.report import Report, SettingItem
from meccano.switchover.settings_check import Found, load_errors, setting_items

MAX_LISTED = 10


@dataclass
class Installation:
    """What was read, for ``apply``: the report and the real values behind it."""

    path: Path
    report: Report
    raw: dict[str, Any] = field(default_factory=dict)  # config.yml's sections as written
    found: list[Found] = field(default_factory=list)
    catalog: Catalog | None = None

    @property
    def config_file(self) -> Path:
        return self.path / "config" / "config.yml"


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def _read_config(path: Path, cfg: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the parsed sections, or None and why the file is not usable)."""
    import yaml  # lazy: yaml costs 9 ms at import (python -X importtime)

    if os.path.islink(cfg) and not inside(cfg, path):
        return None, (f"{cfg} is a link to {os.path.realpath(cfg)!r}, outside the installation: not read; copy the "
                      "file itself into config/")
    try:
        data = read_bounded(os.path.realpath(cfg), MAX_CONFIG_BYTES)
        loaded = yaml.load(data.decode("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except (UnsafeFile, OSError) as exc:
        return None, f"{cfg}: {exc}"
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError, ValueError):
        lines = load_errors(cfg, {})
        return None, lines[0] if lines else f"{cfg}: cannot be read as YAML"
    if loaded is None:
        return {}, None
    if not isinstance(loaded, dict):
        return None, f"{cfg}: the top level must be a mapping of sections (default:, prod:, ...)"
    return {str(k): v for k, v in loaded.items()}, None


def _no_home(path: Path, catalog: Catalog | None, env_file: Path | None) -> list[str]:
    out = []
    mine = os.path.realpath(env_file) if env_file is not None else None
    try:
        others = [e.name for e in os.scandir(path)
                  if e.name not in ("config", "plugins") and os.path.realpath(e.path) != mine]
    except OSError:
        others = []
    if others:
        out.append(f"{_listed(sorted(others))}: the original ServiceManager's own code and files (app, node_modules, "
                   "logs, ...): Airflow and this package replace them; not read, not copied")
    try:
        extra = [e.name for e in os.scandir(path / "config") if e.name != "config.yml"]
    except OSError:
        extra = []
    if extra:
        out.append(f"config/{{{_listed(sorted(extra))}}}: only config/config.yml is read")
    if catalog is not None:
        out += [f"plugins/{s.name}: {s.reason}; not copied" for s in catalog.skipped]
    return out


def check_installation(path: Path, env_file: Path | None = None) -> Installation:
    """Read the installation at ``path``; :class:`SwitchOverError` when it is not one (exit code 2)."""
    cfg, plugins = path / "config" / "config.yml", path / "plugins"
    has_cfg = os.path.lexists(cfg)
    has_plugins = plugins.is_dir() and (not plugins.is_symlink() or inside(plugins, path))
    if not path.is_dir() or not (has_cfg or has_plugins):
        raise SwitchOverError(f"{path}: not an original ServiceManager installation: neither config/config.yml nor a "
                             "plugins/ folder is there; name the folder that holds them")
    variables: EnvFile | None = read_env_file(env_file) if env_file is not None else None
    report = Report(str(path), str(cfg) if has_cfg else None, str(env_file) if env_file else None)
    raw: dict[str, Any] = {}
    if has_cfg:
        parsed, why = _read_config(path, cfg)
        if parsed is None:
            report.settings.append(SettingItem("config.yml", "(file)", "", "problem", str(why)))
        else:
            raw = parsed
    found = setting_items(cfg if has_cfg and raw else None, raw, variables)
    report.settings += [f.item for f in found]
    if variables is not None and variables.not_read:
        report.no_home.append(f"{variables.path.name}: lines {_listed([str(n) for n in variables.not_read])} are not "
                              "plain VAR=value assignments; not read (the file is never run)")
    catalog = None
    if has_plugins:
        report.plugins, catalog = plugin_items(plugins)
    report.no_home = _no_home(path, catalog, env_file) + report.no_home
    return Installation(path, report, raw, found, catalog)
