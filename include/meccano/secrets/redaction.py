"""Secrets removed from what the project writes, also in their encoded forms.

A script that prints a secret rarely prints it bare only: ``Authorization: Basic``
headers carry it in base64, URLs carry it percent-encoded, JSON carries it escaped.
:func:`secret_forms` lists every form of a secret that may appear in output;
:class:`StreamRedactor` replaces them with ``***`` in a byte stream, also when a form is
split across two reads (script output); :func:`redact_text` is the one redaction of every
other text the project writes itself (notifications, storage errors); :func:`mask_in_airflow`
hands the same forms to Airflow's masker, which then hides them in every task log line,
rendered field and traceback of the process (and its supervisor).

Secrets shorter than :data:`MIN_SECRET_LENGTH` characters are **not used for redaction**
(replacing every ``a`` of a log by ``***`` helps no one, and such a secret protects
nothing); :func:`usable_secrets` says which ones were left out so the caller can warn.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MIN_SECRET_LENGTH = 4
MASK = b"***"
# Encoded pieces shorter than this are not redacted alone (they would match by chance).
MIN_FORM_LENGTH = 4
# Output without a newline is flushed in pieces of about this size.
MAX_PENDING = 64 * 1024


def usable_secrets(secrets: Iterable[str]) -> tuple[list[str], list[str]]:
    """(secrets used for redaction, distinct secrets too short to be used)."""
    usable: list[str] = []
    short: list[str] = []
    for secret in dict.fromkeys(s for s in secrets if s):
        (usable if len(secret) >= MIN_SECRET_LENGTH else short).append(secret)
    return usable, short


def _base64_pieces(raw: bytes) -> set[bytes]:
    """The base64 characters that depend on ``raw`` alone, at each of the three byte
    offsets it may have inside a longer encoded text (e.g. ``user:password``)."""
    out = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw)
        start = -(-8 * offset // 6)  # first character made only of raw's bits
        end = 8 * (offset + len(raw)) // 6
        piece = encoded[start:end]
        if len(piece) >= MIN_FORM_LENGTH:
            out.add(piece)
            out.add(piece.replace(b"+", b"-").replace(b"/", b"_"))  # the URL-safe alphabet
    out.add(base64.b64encode(raw))
    out.add(base64.urlsafe_b64encode(raw))
    return out


def secret_forms(secret: str) -> set[bytes]:
    """Every byte string under which ``secret`` may appear in output."""
    raw = secret.encode()
    texts = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret),
             json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    forms = {t.encode() for t in texts}
    forms |= {re.sub(rb"%[0-9A-F]{2}", lambda m: m.group().lower(), f) for f in forms}  # lower-case escapes
    forms |= _base64_pieces(raw)
    return {f for f in forms if len(f) >= MIN_FORM_LENGTH}


class StreamRedactor:
    """Feed bytes in, get redacted complete lines out (and the rest at :meth:`close`)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[bytes] = set()
        for secret in secrets:
            forms |= secret_forms(secret)
        ordered = sorted(forms, key=len, reverse=True)  # longest first: no half-masked secret
        self._pattern = re.compile(b"|".join(re.escape(f) for f in ordered)) if ordered else None
        self._keep = max((len(f) for f in ordered), default=1) - 1
        # A secret holding a newline (a key file) may span lines: hold back its length too.
        self._multiline = any(b"\n" in f for f in ordered)
        self._pending = b""

    def redact(self, data: bytes) -> bytes:
        return self._pattern.sub(MASK, data) if self._pattern else data

    def feed(self, data: bytes) -> list[bytes]:
        """Redacted lines (with their newline) that are complete so far."""
        self._pending += data
        out = []
        cut = self._pending.rfind(b"\n") + 1
        if cut == 0 and len(self._pending) > MAX_PENDING:
            cut = self._safe_cut(len(self._pending) - self._keep)
        elif self._multiline:
            cut = self._safe_cut(max(0, min(cut, len(self._pending) - self._keep)))
        if cut > 0:
            done, self._pending = self._pending[:cut], self._pending[cut:]
            out = self.redact(done).splitlines(keepends=True)
        return out

    def close(self) -> list[bytes]:
        rest, self._pending = self._pending, b""
        return [self.redact(rest)] if rest else []

    def _safe_cut(self, cut: int) -> int:
        """Move ``cut`` back so that it does not split a secret."""
        if self._pattern is None:
            return cut
        for match in self._pattern.finditer(self._pending):
            if match.start() < cut < match.end():
                return match.start()
        return cut


# key=value / key: value pairs whose value is a secret, and the password of a URL: hidden whatever their value
_SECRET_PAIR = re.compile(r"(?i)\b([\w-]*(?:password|passwd|secret|token|secretaccesskey)[\w-]*)(\s*[=:]\s*)"
                          r"(\"[^\"]*\"|'[^']*'|\S+)")
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@\s:]*):(?P<pw>[^/@\s]*)@")


def mask_url_credentials(text: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://user:***@host`` anywhere in ``text``: the one masking of the
    credentials a URL carries, whatever its password."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every known secret (in each of its forms) and anything that looks like one replaced by
    ``***``: the one redaction of the texts the project writes itself."""
    usable, _short = usable_secrets(secrets)
    text = StreamRedactor(usable).redact(text.encode()).decode("utf-8", errors="replace")
    text = _SECRET_PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
    return mask_url_credentials(text)


def mask_in_airflow(secrets: Iterable[str]) -> int:
    """Register every usable secret and each of its text forms with Airflow's masker (``mask_secret``);
    the number of forms handed over. Airflow skips values shorter than its ``[logging]
    min_length_masked_secret``: those are still redacted from script output by :class:`StreamRedactor`."""
    from airflow.sdk.log import mask_secret  # lazy: airflow.sdk.log costs 1185 ms at import (python -X importtime)

    forms = {form.decode("utf-8", errors="ignore") for secret in usable_secrets(secrets)[0]
             for form in secret_forms(secret)}
    for form in sorted(forms, key=len, reverse=True):
        if len(form) >= MIN_FORM_LENGTH:
            mask_secret(form)
    return len(forms)
