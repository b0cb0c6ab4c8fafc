"""Plugin options: declared once with every setting (``meccano.settings.config``: the
``forecast``, ``sensorStatistics``, ``cleanMessages`` and ``alerts`` sections, validated at
load), overridden by the plugin's ``parameters`` / the run's ``dag_run.conf``, which are
checked here against the same declaration. Each bad value names its key and its source.

A run's parameters are not trusted with more than the configuration: a key the section does not
declare is refused, and an option whose smaller value deletes more (``AT_LEAST_CONFIGURED``) may
only be raised, unless the section's ``confMayWiden`` is true (only config.yml can set it)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError

from meccano.errors import ConfigError
from meccano.settings.config import Settings, declared_keys, field_info
from meccano.settings.messages import error_text, plain_number, show
from meccano.settings.narrowing import refuse_widening

WIDEN_KEY = "confMayWiden"
# (section, option): a smaller value destroys more (deletes younger rows).
AT_LEAST_CONFIGURED = frozenset({("cleanMessages", "maxAgeDays")})


@functools.cache
def _adapters(section: str) -> dict[str, TypeAdapter[Any]]:
    """YAML name -> a validator of that option's declared type and range."""
    out: dict[str, TypeAdapter[Any]] = {}
    for key, target in declared_keys():
        if key.path[0] == section and len(key.path) == 2 and key.path[1] != WIDEN_KEY:
            info = field_info(target)
            out[key.path[1]] = TypeAdapter(Annotated[info.annotation, *info.metadata])  # type: ignore[arg-type]
    return out


@functools.cache
def allowed_range(section: str, option: str) -> str:
    """``"; allowed: 1 to 100000"`` from the option's declared bounds (empty when it declares none)."""
    low = high = None
    for key, target in declared_keys():
        if key.path == (section, option):
            for rule in field_info(target).metadata:
                low = getattr(rule, "ge", getattr(rule, "gt", low))
                high = getattr(rule, "le", getattr(rule, "lt", high))
    if low is None and high is None:
        return ""
    shown = [("any" if bound is None else f"{plain_number(bound):,}".replace(",", "")) for bound in (low, high)]
    return f"; allowed: {shown[0]} to {shown[1]}"


def option_names(section: str) -> tuple[str, ...]:
    """The options of ``section`` a run's parameters may set (``confMayWiden`` is config.yml's alone)."""
    return tuple(_adapters(section))


def read_options(section: str, settings: Settings, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The options of ``section`` by their YAML names; raises :class:`ConfigError` naming key and source."""
    out = settings.options(section)
    adapters = _adapters(section)
    unknown = sorted(str(k) for k in (params or {}) if k not in adapters)
    if unknown:
        raise ConfigError(f"{', '.join(unknown)} (plugin parameter / dag_run.conf): not an option of {section}; "
                          f"allowed: {', '.join(adapters)}")
    for key, adapter in adapters.items():
        if params and key in params:
            try:
                value = adapter.validate_python(params[key])
            except ValidationError as exc:
                text = error_text(exc.errors(include_url=False)[0], show(params[key]))
                raise ConfigError(f"{key} (from plugin parameter / dag_run.conf {key!r}): {text}"
                                  f"{allowed_range(section, key)}") from None
            if (section, key) in AT_LEAST_CONFIGURED and value < out[key]:
                refuse_widening(f"{key} (from plugin parameter / dag_run.conf {key!r})", value,
                                f"below the configured {out[key]}", "delete more", f"{section}.{WIDEN_KEY}",
                                bool(out.get(WIDEN_KEY)))
            out[key] = value
    return out
