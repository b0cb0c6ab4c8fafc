"""One translator of pydantic's validation errors into the project's sentences.

Used by the configuration (:mod:`meccano.settings.config`) and the plugin contract
(:mod:`meccano.contract.manifest`), so that one rule reads the same in ``config.yml`` and in
``plugin.json``: "N must be 10 or more", "N must be 20 or less", "N must be greater than 0".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

TYPE_NAMES = {"bool_type": "true or false", "string_type": "a string", "int_type": "a whole number",
              "float_type": "a number", "dict_type": "an object", "list_type": "a list"}
BOUNDS = {"greater_than": "greater than {gt}", "greater_than_equal": "{ge} or more",
          "less_than": "less than {lt}", "less_than_equal": "{le} or less"}
_EMPTY = ("string_too_short", "too_short")


def show(value: Any, limit: int = 80, *, as_json: bool = False, as_python: bool = False,
         mask: Callable[[str], str] | None = None) -> str:
    """A value for a message, the one way every message shows one: a text Python-quoted, anything else as JSON
    (``as_json``: a text too; ``as_python``: anything as Python writes it), ``mask`` applied (URL credentials),
    then cut to ``limit`` characters (inputs may be huge)."""
    if as_python or (isinstance(value, str) and not as_json):
        text = repr(value)
    else:
        try:
            text = json.dumps(value)
        except (TypeError, ValueError, RecursionError):
            text = type(value).__name__
    if mask is not None:
        text = mask(text)
    return text if len(text) <= limit else text[:limit] + "...(cut)"


def plain_number(value: Any) -> Any:
    """20.0 -> 20 (a bound declared as a float reads as the whole number it is)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def error_text(error: Mapping[str, Any], shown: str | None = None) -> str:
    """A pydantic error (one item of ``ValidationError.errors()``) as a sentence.

    ``shown``: how the value reads in the sentence, when the caller knows better than the
    model (a setting's original text, ``70000`` from an environment variable rather than
    ``'70000'``); by default the value pydantic saw, quoted.
    """
    kind, value = error["type"], error.get("input")
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind in BOUNDS:
        bound = BOUNDS[kind].format(**{k: plain_number(v) for k, v in ctx.items()})
        return f"{show(value) if shown is None else shown} must be {bound}"
    if kind == "missing":
        return "missing required field"
    if kind in _EMPTY:
        return "must not be empty"
    if kind in TYPE_NAMES:
        return f"must be {TYPE_NAMES[kind]}, got {show(value, as_json=True)}"
    if kind == "finite_number":
        return f"{show(value)} must be a finite number"
    if kind == "string_too_long":
        return f"is {len(str(value))} characters; at most {ctx['max_length']}"
    if kind == "too_long":
        return f"has {ctx.get('actual_length')} entries; at most {ctx.get('max_length')}"
    return str(error["msg"])
