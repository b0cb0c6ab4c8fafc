"""One rule for booleans and numbers, everywhere: config.yml, environment variables, plugin options and
``dag_run.conf`` read the same words as booleans and the same texts as numbers, with the same messages
(a number is never a boolean, ``true`` is never 1)."""

from __future__ import annotations

import math
import re
from typing import Any

from meccano.errors import ConfigError
from meccano.settings.messages import show

# config.yml, environment variables, plugin options, dag_run.conf: the same words are
# booleans and the same texts are numbers, with the same messages.

MAX_RETENTION_DAYS = 36500  # a hundred years: the longest retention export.days, a table's days or a run's conf sets
TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0"})
_NUMBER_TEXT = re.compile(r"[+-]?[0-9]{1,40}(?:\.[0-9]{0,40})?(?:[eE][+-]?[0-9]{1,3})?")


def parse_bool(value: Any) -> bool:
    """true/false (YAML, JSON) or one of :data:`TRUE_WORDS` / :data:`FALSE_WORDS`, any case."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE_WORDS:
            return True
        if text in FALSE_WORDS:
            return False
    raise ValueError(f"{show(value, 60, as_python=True)} is not a boolean; use true or false")


def parse_number(value: Any, whole: bool = True) -> int | float:
    """A whole number (``whole``) or a finite number from a number or its text; never a boolean."""
    kind = "whole number" if whole else "number"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{show(value, 60, as_python=True)} is not a {kind}")
    if isinstance(value, str):
        text = value.strip()
        if not _NUMBER_TEXT.fullmatch(text):
            raise ValueError(f"{show(value, 60, as_python=True)} is not a {kind}")
        number: int | float = int(text) if re.fullmatch(r"[+-]?[0-9]+", text) else float(text)
    else:
        number = value
    if isinstance(number, float):
        if not math.isfinite(number):
            raise ValueError(f"{show(value, 60, as_python=True)} is not a finite {kind}")
        if whole:
            if number != int(number):
                raise ValueError(f"{show(value, 60, as_python=True)} is not a whole number")
            number = int(number)
    return number


def range_problem(number: int | float, minimum: float | None = None, maximum: float | None = None) -> str | None:
    if minimum is not None and number < minimum:
        return f"{number} must be {minimum} or more"
    if maximum is not None and number > maximum:
        return f"{number} must be {maximum} or less"
    return None


def as_number(value: Any, where: str, minimum: float | None = None, maximum: float | None = None, *,
              whole: bool = True) -> int | float:
    """:func:`parse_number` within ``minimum``..``maximum``, with an error naming ``where``."""
    try:
        number = parse_number(value, whole)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    why = range_problem(number, minimum, maximum)
    if why:
        raise ConfigError(f"{where}: {why}")
    return number


def as_int(value: Any, where: str, minimum: float | None = None, maximum: float | None = None) -> int:
    return int(as_number(value, where, minimum, maximum, whole=True))  # already whole


