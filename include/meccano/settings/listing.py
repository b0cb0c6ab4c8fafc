"""``config show``: every declared setting by its YAML key and its variable, the value in effect (secrets
and URL credentials masked) and where that value came from, in the loader's own order of precedence:
the variable, else the ``MECCANO_ENV`` section of the file, else its ``default:`` section, else the
built-in default (:func:`meccano.settings.config.load_settings`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from meccano.secrets.redaction import mask_url_credentials
from meccano.settings.config import (
    KEY_ALIASES,
    Key,
    Secret,
    Settings,
    _config_path,
    _lookup,
    _read_yaml,
    _value_at,
    declared_keys,
)

BUILT_IN = "built-in default"


@dataclass(frozen=True)
class SettingRow:
    key: str  # the YAML path, as config.yml spells it
    variable: str  # the environment variable that overrides it ("" when it has none)
    value: str  # as shown: secrets as ***, URL credentials as user:***@
    source: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def shown(value: Any) -> str:
    """A setting's value as ``config show`` prints it: never a secret, never a URL's password."""
    if isinstance(value, Secret):
        return "***" if value else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(shown(v) for v in value)
    if hasattr(value, "table") and hasattr(value, "date_column"):  # an export.tables entry
        return f"{value.table}({value.date_column})"
    return mask_url_credentials(str(value))


def _set_in(section: Any, key: Key) -> bool:
    if not isinstance(section, Mapping):
        return False
    aliases = [alias for alias, real in KEY_ALIASES.items() if real == key.path]
    return any(_lookup(section, path)[0] for path in [key.path, *aliases])


def setting_rows(settings: Settings, env: Mapping[str, str] | None = None) -> list[SettingRow]:
    """One row per declared setting of ``settings`` (loaded from ``env``, by default the process's)."""
    env = os.environ if env is None else env
    cfg_path, _ = _config_path(None, env)
    raw = _read_yaml(cfg_path, []) if cfg_path.exists() else {}
    environment = settings.environment
    chosen = raw.get(environment) if environment != "default" else None
    rows = []
    for key, target in declared_keys():
        if key.env and env.get(key.env, "") != "":
            source = f"environment variable {key.env}"
        elif _set_in(chosen, key):
            source = f"{cfg_path} [{environment}]"
        elif _set_in(raw.get("default"), key):
            source = f"{cfg_path} [default]"
        else:
            source = BUILT_IN
        rows.append(SettingRow(key.yaml, key.env or "", shown(_value_at(settings, target)), source))
    return rows
