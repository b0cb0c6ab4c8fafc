"""Settings of the web view: who may read the listing without an Airflow login, and CORS.

From the ``web:`` section of config.yml, each overridden by an environment variable:

=================  ============================  =====================================================
YAML key           environment variable          meaning
=================  ============================  =====================================================
consoleToken       MECCANO_WEB_CONSOLE_TOKEN     read-only token for ``GET /meccano/plugins`` (header
                                                 ``X-Meccano-Token`` or ``Authorization: Bearer``)
consoleAllowList   MECCANO_WEB_CONSOLE_ALLOW     client addresses/networks (comma separated) that may
                                                 read the listing without a login
corsOrigins        MECCANO_WEB_CORS_ORIGINS      origins (comma separated) allowed to call the API
                                                 from a browser; empty = no cross-origin access
=================  ============================  =====================================================
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meccano.errors import ConfigError
from meccano.settings.config import Secret, Settings, as_secret

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# YAML key of the ``web:`` section -> the environment variable that overrides it
ENV_KEYS: dict[str, str] = {
    "consoleToken": "MECCANO_WEB_CONSOLE_TOKEN",
    "consoleAllowList": "MECCANO_WEB_CONSOLE_ALLOW",
    "corsOrigins": "MECCANO_WEB_CORS_ORIGINS",
}


@dataclass(frozen=True)
class WebSettings:
    console_token: Secret = field(default_factory=lambda: Secret(""))
    allow_list: tuple[Network, ...] = ()
    cors_origins: tuple[str, ...] = ()


def _items(value: Any, where: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise ConfigError(f"{where}: expected a list of strings or a comma separated string")


def web_settings(settings: Settings, env: Mapping[str, str] | None = None) -> WebSettings:
    env = os.environ if env is None else env
    section = settings.section("web")

    def pick(key: str) -> tuple[Any, str]:
        var = ENV_KEYS[key]
        if env.get(var):
            return env[var], f"environment variable {var}"
        return section.get(key), f"web.{key} (from {settings.source})"

    token_raw, token_src = pick("consoleToken")
    token = as_secret(token_raw, token_src)
    allow_raw, allow_src = pick("consoleAllowList")
    networks = []
    for item in _items(allow_raw, allow_src):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"{allow_src}: {item!r} is not an IP address or network like 10.0.0.0/24") from None
    cors_raw, cors_src = pick("corsOrigins")
    origins = _items(cors_raw, cors_src)
    for origin in origins:
        if origin == "*" or not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
            raise ConfigError(f"{cors_src}: {origin!r} is not an origin like https://console.example.com "
                              "(scheme://host[:port], no path; '*' is not allowed)")
    return WebSettings(token, tuple(networks), tuple(origins))
