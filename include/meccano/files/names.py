"""Turning a run id or a name into one safe path component.

Every helper that builds a folder from a value it did not choose (a run id, a plugin
name) goes through :func:`safe_component`: the result is never empty, ``.`` or ``..``,
never starts with a dot (no hidden or parent folder), and holds only letters, digits,
``-``, ``_`` and ``.``. An export attempt of run ``..`` therefore works in
``<staging>/_..``, never in (and never removes) the parent of the staging folder.
"""

from __future__ import annotations

MAX_LENGTH = 200


def safe_component(value: str) -> str:
    """``value`` as a single, visible path component (characters outside ``[A-Za-z0-9._-]`` become ``_``)."""
    safe = "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "_" for c in value)[:MAX_LENGTH]
    if not safe or safe.startswith("."):
        safe = "_" + safe
    return safe
