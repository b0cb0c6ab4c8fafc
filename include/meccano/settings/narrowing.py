"""The one rule of a run's ``dag_run.conf`` against config.yml: a run may keep more than configured, never less
(a shorter retention, a lower age: it would purge or delete more), unless config.yml itself allows it (the section's
``confMayWiden``, which a run's conf can never set). The export (``days``) and the fleet plugins (``maxAgeDays``, ...)
both ask it here."""

from __future__ import annotations

from meccano.errors import RunConfWidens


def refuse_widening(where: str, asked: object, than_configured: str, effect: str, allow_key: str,
                    may_widen: bool) -> None:
    """Raise :class:`RunConfWidens` for a run asking ``asked`` at ``where``, which is ``than_configured`` (e.g.
    "shorter than the configured retention of Facts (3)") and would ``effect``, unless ``may_widen``."""
    if may_widen:
        return
    raise RunConfWidens(f"{where}: {asked} is {than_configured} and would {effect}; a run may only keep more (set "
                        f"config.yml {allow_key}: true to allow)")
