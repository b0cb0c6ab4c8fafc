"""Plugin options: declared once with every setting (``meccano.settings.config``: the
``forecast``, ``sensorStatistics``, ``cleanMessages`` and ``alerts`` sections, validated at
load), overridden by the plugin's ``parameters`` / the run's ``dag_run.conf``, which are
checked here against the same declaration. Each bad value names its key and its source."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError

from meccano.errors import ConfigError
from meccano.settings.config import Settings, declared_keys, field_info
from meccano.settings.messages import error_text


@functools.cache
def _adapters(section: str) -> dict[str, TypeAdapter[Any]]:
    """YAML name -> a validator of that option's declared type and range."""
    out: dict[str, TypeAdapter[Any]] = {}
    for key, target in declared_keys():
        if key.path[0] == section and len(key.path) == 2:
            info = field_info(target)
            out[key.path[1]] = TypeAdapter(Annotated[info.annotation, *info.metadata])  # type: ignore[arg-type]
    return out


def read_options(section: str, settings: Settings, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The options of ``section`` by their YAML names; raises :class:`ConfigError` naming key and source."""
    out = settings.options(section)
    for key, adapter in _adapters(section).items():
        if params and key in params:
            try:
                out[key] = adapter.validate_python(params[key])
            except ValidationError as exc:
                text = error_text(exc.errors(include_url=False)[0], str(params[key]))
                raise ConfigError(f"{key} (from plugin parameter / dag_run.conf {key!r}): {text}") from None
    return out
