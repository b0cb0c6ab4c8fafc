"""Validation of a plugin's ``schedule``: a 5-field cron expression or an Airflow preset.

Hand-written rather than croniter so that each problem names the field and the value
(``minute field: 61 is out of range 0-59``) and so that validating a thousand plugins
costs nothing at DAG parse time. Plugins share few distinct schedules, so each distinct
expression is checked once per process (the answer depends on the text alone).
"""

from __future__ import annotations

import re
from functools import lru_cache

PRESETS = frozenset({
    "@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly",
    "@yearly", "@annually", "@midnight",
})

_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}),
    ("day-of-week", 0, 7, {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}),
)
_TERM = re.compile(r"^(\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/([0-9]+))?$")


def _value(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    if text.isdigit():
        number = int(text)
    elif text in names:
        number = names[text]
    else:
        raise ValueError(f"{name} field: {text!r} is not a number")
    if not low <= number <= high:
        raise ValueError(f"{name} field: {number} is out of range {low}-{high}")
    return number


@lru_cache(maxsize=1024)
def cron_problem(expression: str) -> str | None:
    """None when ``expression`` is a valid schedule, else what is wrong with it."""
    if expression in PRESETS:
        return None
    if expression.startswith("@"):
        return f"unknown preset {expression!r}; use one of {', '.join(sorted(PRESETS))} or a 5-field cron"
    parts = expression.split()
    if len(parts) != 5:
        return (f"{expression!r} has {len(parts)} fields; a cron schedule has 5 "
                "(minute hour day-of-month month day-of-week), e.g. '*/10 * * * *'")
    for part, (name, low, high, names) in zip(parts, _FIELDS, strict=True):
        for term in part.lower().split(","):
            match = _TERM.match(term)
            if not match:
                return f"{name} field: {term!r} is not a valid cron term"
            base, step = match.groups()
            try:
                if base != "*":
                    ends = [_value(v, name, low, high, names) for v in base.split("-")]
                    if len(ends) == 2 and ends[0] > ends[1]:
                        return f"{name} field: range {base!r} runs backwards"
                if step is not None and int(step) == 0:
                    return f"{name} field: step 0 in {term!r}"
            except ValueError as exc:
                return str(exc)
    return None
