"""Validation of a plugin's ``schedule``: a 5-field cron expression or an Airflow preset.

Airflow's own verdict decides: its cron timetables validate with croniter
(``CronMixin.validate``), so croniter accepts what Airflow accepts (``L``, ``1#1``, ``?``,
names) and rejects what it rejects. On top of that an expression must fire at least once
(``0 0 31 2 *`` parses but never runs: croniter finds no next date) and have five fields
(the contract; croniter would also take a seconds or a year field). When croniter
rejects an expression, a short field-by-field reading names the field and the value
(``minute field: 61 is out of range 0-59``) where it can. Plugins share few distinct
schedules, so each distinct expression is checked once per process.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

PRESETS = frozenset({
    "@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly",
    "@yearly", "@annually", "@midnight",
})
MAX_LENGTH = 100

_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}),
    ("day-of-week", 0, 7, {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}),
)
_TERM = re.compile(r"(\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/([0-9]+))?")
_START = datetime(2024, 1, 1, tzinfo=UTC)


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


def _explain(parts: list[str]) -> str | None:
    """The first field-level problem a plain reading finds (used only once croniter said no)."""
    for part, (name, low, high, names) in zip(parts, _FIELDS, strict=True):
        for term in part.lower().split(","):
            match = _TERM.fullmatch(term)
            if not match:
                continue  # L, W, #, ? and friends: croniter's message says more
            base, step = match.groups()
            if base != "*" and any(v not in names and (v[:1] == "l" or v[-1:] in ("l", "w"))
                                   for v in base.split("-")):
                continue  # L-40, 5L, 15W: croniter's message says more
            try:
                if base != "*":
                    ends = [_value(v, name, low, high, names) for v in base.split("-")]
                    if len(ends) == 2 and ends[0] > ends[1] and name != "day-of-week":
                        return f"{name} field: range {base!r} runs backwards"
                if step is not None and int(step) == 0:
                    return f"{name} field: step 0 in {term!r}"
            except ValueError as exc:
                return str(exc)
    return None


@lru_cache(maxsize=1024)
def cron_problem(expression: str) -> str | None:
    """None when Airflow accepts ``expression`` and it fires, else what is wrong with it."""
    from croniter import croniter  # lazy: croniter costs 23 ms at import (python -X importtime)

    if len(expression) > MAX_LENGTH:
        return f"longer than {MAX_LENGTH} characters"
    if expression in PRESETS:
        return None
    if expression.startswith("@"):
        return f"unknown preset {expression!r}; use one of {', '.join(sorted(PRESETS))} or a 5-field cron"
    parts = expression.split()
    if len(parts) != 5:
        return (f"{expression!r} has {len(parts)} fields; a cron schedule has 5 "
                "(minute hour day-of-month month day-of-week), e.g. '*/10 * * * *'")
    try:
        it = croniter(expression, _START)
    except Exception as exc:  # CroniterBadCronError and anything a hostile text provokes
        detail = _explain(parts)
        return detail or f"{expression!r} is not accepted by Airflow (croniter): {exc}"
    try:
        it.get_next(datetime)
    except Exception:  # CroniterBadDateError: no date matches
        return (f"{expression!r} never fires (no date matches it, e.g. 31 February); "
                "Airflow would keep the DAG active without ever running it")
    return None
