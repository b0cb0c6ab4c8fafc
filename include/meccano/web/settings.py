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

The keys are declared with every other setting and validated at load
(:class:`meccano.settings.config.WebSettings`); a bad value stops the load naming key and source.
"""

from __future__ import annotations

from meccano.settings.config import Settings, WebSettings

__all__ = ["WebSettings", "web_settings"]


def web_settings(settings: Settings) -> WebSettings:
    """The web view's settings (the ``web:`` section and its variables)."""
    return settings.web
