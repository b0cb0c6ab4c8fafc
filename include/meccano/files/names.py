"""Turning a run id or a name into one safe path component.

Every helper that builds a folder from a value it did not choose (a run id, a plugin
name) goes through :func:`safe_component`: the result is never empty, ``.`` or ``..``,
never starts with a dot (no hidden or parent folder), and holds only letters, digits,
``-``, ``_``, ``.`` and ``~``. A value that is already such a name keeps it (folders of
stored reports keep their paths); in any other value each byte outside that set, and a
leading dot, is written ``~XX`` (hex). ``~`` never occurs in a kept name, so two values
that differ never share a folder (``a:b`` is ``a~3ab``, ``a+b`` is ``a~2bb``, and ``a_b``
stays ``a_b``). An export attempt of run ``..`` therefore works in ``<staging>/~2e.``,
never in (and never removes) the parent of the staging folder. A name longer than
``MAX_LENGTH`` ends in a digest of the whole value instead of being cut.
"""

from __future__ import annotations

import hashlib

MAX_LENGTH = 200
_DIGEST = 16


def _kept(c: str) -> bool:
    return (c.isascii() and c.isalnum()) or c in "-_."


def safe_component(value: str) -> str:
    """``value`` as a single, visible path component; values that differ give names that differ."""
    if value and not value.startswith(".") and all(_kept(c) for c in value):
        safe = value
    else:
        safe = "".join(c if _kept(c) and not (i == 0 and c == ".") else "".join(f"~{b:02x}" for b in c.encode())
                       for i, c in enumerate(value)) or "~"
    if len(safe) > MAX_LENGTH:
        digest = hashlib.sha256(value.encode()).hexdigest()[:_DIGEST]
        safe = safe[:MAX_LENGTH - _DIGEST - 2] + "~~" + digest
    return safe
