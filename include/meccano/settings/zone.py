"""The fleet's time zone (``timezone`` / ``TZ``, default ``Brazil/East``).

It is the zone every plugin's cron is evaluated in (daylight-saving changes included),
the zone the listing and the web page show times in, and the zone the original
deployments ran their database server in. ``Brazil/East`` is the tz database's alias
of ``America/Sao_Paulo``.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meccano.errors import ConfigError

DEFAULT_ZONE = "Brazil/East"


def zone_problem(name: str) -> str | None:
    """None when ``name`` is a zone of the tz database, else what is wrong and how to fix it."""
    hint = ("use a tz database name like America/Sao_Paulo (the original's default Brazil/East is an alias "
            "of it), Europe/Lisbon or UTC")
    if not name:
        return f"the time zone is empty; {hint}"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        shown = repr(name) if len(name) <= 60 else repr(name[:60]) + "...(cut)"
        return f"unknown time zone {shown}; {hint}"
    return None


def fleet_zone(name: str) -> ZoneInfo:
    """The zone of ``name``; raises :class:`meccano.errors.ConfigError` when it is unknown."""
    problem = zone_problem(name)
    if problem:
        raise ConfigError(f"timezone: {problem}")
    return ZoneInfo(name)
