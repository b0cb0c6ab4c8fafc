"""The one shape of "a problem": what is wrong, where, how bad, and how to fix it.

A plugin's ``plugin.json`` (the contract), a missing prerequisite (``db check``, ``config show``, the Meccano
page) and the switch-over report all say what they found with a :class:`Problem`. It renders one way
(``str``): ``[LABEL ][within: ]where: message[. Fix: fix]``, with the credentials a URL may carry masked
(``scheme://user:***@host``); :meth:`Problem.as_json` gives the same, masked, as fields for ``-o json``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from meccano.secrets.redaction import mask_url_credentials


class Severity(StrEnum):
    """How bad a problem is: ``error`` stops what it concerns (an invalid plugin, a missing prerequisite, a plugin
    that needs a change); ``warning`` needs the operator before it runs here; ``info`` is worth a look once."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Problem:
    """One problem. ``where`` names the file, field, setting, table or prerequisite; ``within`` what holds it
    (a plugin folder), shown first; ``label`` a word shown before everything (``MISSING``)."""

    where: str
    message: str
    fix: str | None = None
    severity: Severity = Severity.ERROR
    within: str | None = None
    label: str | None = None

    def masked(self) -> Problem:
        """The same problem with URL credentials masked in every text (what a page or a JSON output shows)."""
        return replace(self, where=mask_url_credentials(self.where), message=mask_url_credentials(self.message),
                       fix=mask_url_credentials(self.fix) if self.fix else self.fix,
                       within=mask_url_credentials(self.within) if self.within else self.within)

    def relative(self) -> Problem:
        """The problem without ``within`` (for a listing whose rows already name it)."""
        return replace(self, within=None)

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}"
        if self.within:
            text = f"{self.within}: {text}"
        if self.label:
            text = f"{self.label} {text}"
        if self.fix:
            text += f". Fix: {self.fix}"
        return mask_url_credentials(text)

    def as_json(self) -> dict[str, str | None]:
        """severity, where, message, fix (and within when set), masked."""
        shown = self.masked()
        out: dict[str, str | None] = {"severity": str(shown.severity), "where": shown.where,
                                      "message": shown.message, "fix": shown.fix}
        if shown.within:
            out["within"] = shown.within
        return out
