"""The settings part of ``migrate check``: every key of every ``config.yml`` section and every
variable of the variables file, judged against the declarations of :mod:`meccano.settings.config`.

A bad value is judged by the configuration loader itself (:func:`load_settings` on the original
file, one section at a time, then on the variables alone), so the report gives the very message
``config show`` would give, never a second opinion.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meccano.errors import ConfigError
from meccano.secrets.redaction import mask_url_credentials
from meccano.settings.config import KEY_ALIASES, Key, declared_keys, kind_of, load_settings
from meccano.settings.legacy import IGNORED
from meccano.settings.messages import show
from meccano.settings.pool import IOTDB_POOL
from meccano.settings.rules import parse_bool, parse_number
from meccano.switchover.envfile import EnvFile
from meccano.switchover.report import SettingItem

_SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY|CREDENTIAL|AUTH", re.IGNORECASE)
_SECTION_SELECTORS = ("NODE_ENV", "MECCANO_ENV")
_CONFIG_NAMERS = ("CONFIG_FILE", "MECCANO_CONFIG")


@dataclass(frozen=True)
class Found:
    """One setting as found, with its real value (for ``apply``) next to the line the report shows."""

    item: SettingItem
    section: str | None  # the YAML section; None for a variable
    path: tuple[str, ...]  # where it goes in config.yml: () when it is not written there
    value: Any
    secret_var: str | None = None  # a secret: this variable must be set in the new environment instead


def _by_path() -> dict[tuple[str, ...], tuple[Key, tuple[str, ...]]]:
    return {key.path: (key, target) for key, target in declared_keys()}


def _by_env() -> dict[str, tuple[Key, tuple[str, ...]]]:
    return {key.env: (key, target) for key, target in declared_keys() if key.env}


def _legacy_by_path() -> dict[tuple[str, ...], tuple[str, str]]:
    return {path: (var, why) for var, (path, why) in IGNORED.items()}


def shown(value: Any, secret: bool) -> str:
    """A value for the report: ``***`` for a secret, a list by its length, URL credentials masked, long values cut."""
    if secret:
        return "***"
    if isinstance(value, list):
        return f"[{len(value)} entries]"
    return show(value, mask=mask_url_credentials)


def typed(text: str, target: tuple[str, ...]) -> Any:
    """A variable's text as config.yml would hold it (``'30'`` -> ``30``), once the loader accepted it."""
    kind = kind_of(target)
    if kind == "bool":
        return parse_bool(text)
    if kind in ("int", "number"):
        return parse_number(text, whole=kind == "int")
    return text


def _problems(lines: list[str], labels: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The loader's error lines: (label key -> message, lines naming no declared key)."""
    attributed: dict[str, str] = {}
    rest: list[str] = []
    for line in lines:
        for name, label in labels.items():
            if line.startswith(label + ":") or (not label and line.startswith(f"config.yml {name}")):
                attributed.setdefault(name, line)
                break
        else:
            rest.append(line)
    return attributed, rest


def load_errors(path: Path, env: Mapping[str, str]) -> list[str]:
    """The loader's error lines for ``path`` read with ``env``; its warnings stay out of the log (the report
    names every key itself)."""
    quiet = [logging.getLogger(name) for name in ("meccano.settings.config", "meccano.settings.legacy")]
    before = [logger.disabled for logger in quiet]
    for logger in quiet:
        logger.disabled = True
    try:
        load_settings(path, env=env)
    except ConfigError as exc:
        return str(exc).splitlines()
    finally:
        for logger, state in zip(quiet, before, strict=True):
            logger.disabled = state
    return []


def _replacement(key: Key, value: Any) -> str | None:
    """What replaces a declared setting that has moved somewhere else, None when it is kept as it is."""
    legacy = _legacy_by_path().get(key.path)
    if legacy:
        return legacy[1]
    if key.yaml == "mysql.connectionLimit":
        return (f"the Airflow pool '{IOTDB_POOL}' with {value} slots: plugin tasks using the IOTDB at once across "
                "the cluster (`python -m meccano pool sync`); kept in config.yml")
    if key.yaml == "timezone":
        return (f"the fleet's zone {value}: every plugin schedule runs in it, daylight saving included "
                "(the original used the host's clock); kept in config.yml")
    return None


def _declared(key: Key, target: tuple[str, ...], value: Any, source: str,
              problem: str | None) -> tuple[SettingItem, str | None, bool]:
    """(the item, the secret's variable, whether it is written to config.yml)."""
    secret = kind_of(target) == "secret"
    text = shown(value, secret)
    if problem:
        return SettingItem(source, key.yaml if source.startswith("config.yml") else str(key.env), text, "problem",
                           problem), None, False
    name = key.yaml if source.startswith("config.yml") else str(key.env)
    replaced = _replacement(key, value)
    if replaced is not None:
        kept = key.path not in _legacy_by_path()
        return SettingItem(source, name, text, "replaced", replaced), None, kept
    if secret:
        var = key.env or key.yaml
        return SettingItem(source, name, text, "carried",
                           f"secret: never written to config.yml; set {var} in the environment of Airflow's "
                           "workers and API servers (or an Airflow connection)"), var, False
    return SettingItem(source, name, text, "carried"), None, True


def _walk(section: Mapping[str, Any]) -> list[tuple[tuple[str, ...], Any]]:
    """The leaves the loader reads: top-level keys and the keys one level into a known mapping."""
    declared = {key.path for key, _ in declared_keys()}
    nested = {path[0] for path in [*declared, *_legacy_by_path(), *KEY_ALIASES] if len(path) == 2}
    out: list[tuple[tuple[str, ...], Any]] = []
    for top, value in section.items():
        if str(top) in nested and isinstance(value, Mapping):
            out += [((str(top), str(sub)), v) for sub, v in value.items()]
        else:
            out.append(((str(top),), value))
    return out


def _undeclared(path: tuple[str, ...], value: Any, source: str) -> tuple[SettingItem, tuple[str, ...]]:
    """An item for a key no declaration names, and where it goes in config.yml (() when nowhere)."""
    name = ".".join(path)
    legacy = _legacy_by_path().get(path)
    if legacy:
        return SettingItem(source, name, shown(value, False), "replaced", legacy[1]), ()
    if path in KEY_ALIASES:
        real = KEY_ALIASES[path]
        return SettingItem(source, name, shown(value, False), "carried",
                           f"written as {'.'.join(real)} (the name the original read)"), real
    if len(path) == 1 and isinstance(value, Mapping):
        return SettingItem(source, name, f"{{{len(value)} keys}}", "carried",
                           f"a section of its own: plugins read it (settings.section({name!r}))"), path
    known = sorted({key.yaml for key, _ in declared_keys()})
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return SettingItem(source, name, shown(value, bool(_SECRET_NAME.search(name))), "ignored",
                       f"not a setting of the ServiceManager here (unknown key){hint}"), ()


def yaml_settings(cfg: Path, raw: Mapping[str, Any]) -> list[Found]:
    """Every key of every section of the original ``config.yml`` (``raw``: its parsed sections)."""
    labels_of = {section: {key.yaml: key.label(f"{cfg} [{section}]", from_env=False) for key, _ in declared_keys()}
                 for section in raw}
    default_errors = set(load_errors(cfg, {}))
    found: list[Found] = []
    by_path = _by_path()
    for section, body in raw.items():
        source = f"config.yml [{section}]"
        errors = default_errors if section == "default" else set(load_errors(cfg, {"MECCANO_ENV": str(section)}))
        attributed, rest = _problems(sorted(errors), labels_of[section])
        if section != "default":
            rest = [line for line in rest if line not in default_errors]
        found += [Found(SettingItem(source, "(section)", "", "problem", line), str(section), (), None)
                  for line in rest]
        if not isinstance(body, Mapping):
            continue
        for path, value in _walk(body):
            if path in by_path:
                key, target = by_path[path]
                item, secret_var, kept = _declared(key, target, value, source, attributed.get(key.yaml))
                found.append(Found(item, str(section), path if kept else (), value, secret_var))
            else:
                item, where = _undeclared(path, value, source)
                found.append(Found(item, str(section), where, value))
    return found


def _other_variable(name: str, value: str, source: str, sections: list[str]) -> SettingItem:
    if name in _SECTION_SELECTORS:
        if sections and value not in sections and value != "default":
            return SettingItem(source, name, shown(value, False), "problem",
                               f"{name}={value!r}: no section {value!r} in config.yml (sections: "
                               f"{', '.join(sections)}); fix the variable or the file")
        return SettingItem(source, name, shown(value, False), "replaced",
                           f"MECCANO_ENV (NODE_ENV still works): selects the section {value!r} of config.yml; set it "
                           "in the new environment")
    if name in _CONFIG_NAMERS:
        return SettingItem(source, name, shown(value, False), "ignored",
                           "apply writes config/config.yml of the new installation (MECCANO_CONFIG names another "
                           "file)")
    known = sorted([*_by_env(), *IGNORED, *_SECTION_SELECTORS])
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return SettingItem(source, name, shown(value, bool(_SECRET_NAME.search(name))), "ignored",
                       f"not a setting of the ServiceManager{hint}")


def variable_settings(env_file: EnvFile, sections: list[str]) -> list[Found]:
    """Every variable of the variables file; bad values judged by the loader on the variables alone."""
    source = env_file.path.name
    values = {k: v for k, v in env_file.values().items() if k not in _SECTION_SELECTORS}
    by_env = _by_env()
    labels = {name: key.label(f"environment variable {name}", from_env=True) for name, (key, _) in by_env.items()}
    attributed, _rest = _problems(load_errors(Path(os.devnull), values), labels)
    found: list[Found] = []
    for entry in env_file.entries:
        if entry.value is None and entry.name not in by_env and entry.name not in _SECTION_SELECTORS:
            found.append(Found(SettingItem(source, entry.name, "(not read)", "ignored",
                                           f"not a setting of the ServiceManager (line {entry.line}: "
                                           f"{entry.problem})"), None, (), None))
        elif entry.value is None:
            secret = entry.name in by_env and kind_of(by_env[entry.name][1]) == "secret"
            found.append(Found(SettingItem(source, entry.name, "***" if secret else "(not read)", "problem",
                                           f"line {entry.line}: {entry.problem}"), None, (), None))
        elif entry.name in by_env:
            key, target = by_env[entry.name]
            item, secret_var, kept = _declared(key, target, entry.value, source, attributed.get(entry.name))
            value = typed(entry.value, target) if item.status != "problem" else entry.value
            found.append(Found(item, None, key.path if kept else (), value, secret_var))
        else:
            found.append(Found(_other_variable(entry.name, entry.value, source, sections), None, (), entry.value))
    return found


def _overriding(found: Found, raw: Mapping[str, Any]) -> Found:
    """A variable that set a key the file sets too: say which sections it won over."""
    sections = [str(name) for name, body in raw.items()
                if isinstance(body, Mapping) and has_key_path(body, found.path)]
    if not sections or found.item.status != "carried" or found.item.detail:
        return found
    item = SettingItem(found.item.source, found.item.key, found.item.value, found.item.status,
                       f"overrides config.yml [{', '.join(sections)}]")
    return Found(item, found.section, found.path, found.value, found.secret_var)


def has_key_path(tree: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    """Whether the nested mapping ``tree`` has the key ``path`` (``("export", "days")``), whatever its value."""
    node: Any = tree
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def setting_items(cfg: Path | None, raw: Mapping[str, Any], env_file: EnvFile | None) -> list[Found]:
    found = yaml_settings(cfg, raw) if cfg is not None else []
    if env_file is not None:
        found += [_overriding(f, raw) for f in variable_settings(env_file, [str(s) for s in raw])]
    return found
