"""Plugin options: built-in default, overridden by a ``config.yml`` section, overridden
by the plugin's ``parameters`` / the run's ``dag_run.conf``. Each bad value is
reported with its key, its source and how to fix it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meccano.settings.config import Settings, as_number


@dataclass(frozen=True)
class Option:
    default: int | float
    minimum: int | float
    kind: type = int  # int or float
    help: str = ""
    maximum: int | float | None = None


def read_options(section: str, spec: Mapping[str, Option], settings: Settings,
                 params: Mapping[str, Any] | None = None,
                 fallbacks: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Resolve every option of ``spec``; raises :class:`ConfigError` naming key and source.

    ``fallbacks`` are values of typed settings (e.g. ``forecast.days`` / FORECAST_DAYS) that
    already merge the YAML key and its environment variable: the section is not read again
    for them, so the environment variable keeps winning.
    """
    from_section = settings.section(section)
    out: dict[str, Any] = {}
    for key, opt in spec.items():
        value: Any = opt.default
        source = "built-in default"
        if fallbacks and key in fallbacks:
            value, source = fallbacks[key], "settings (config.yml and its environment variable)"
        elif key in from_section:
            value, source = from_section[key], f"config.yml section {section}.{key}"
        if params and key in params:
            value, source = params[key], f"plugin parameter / dag_run.conf {key!r}"
        out[key] = _check(key, value, opt, source)
    return out


def _check(key: str, value: Any, opt: Option, source: str) -> int | float:
    return as_number(value, f"{key} (from {source})", opt.minimum, opt.maximum,
                     whole=opt.kind is int)  # the one rule (meccano.settings.config)
