"""The original's variables, read from a ``~/.bash_profile``-like file without ever executing it.

Only plain assignments are read: ``export VAR=value`` or ``VAR=value``, the value unquoted,
``'single quoted'`` (literal) or ``"double quoted"`` (``\\"``, ``\\\\``, ``\\$`` and ``\\```
unescaped). A value that needs the shell (``$HOME``, ``$(cat file)``, backticks, an
unquoted space) is not guessed: the variable is reported with the reason. Every other
line (``if``, ``source``, ``alias``, functions) is counted as not read. The last
assignment of a variable wins, as in the shell.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from meccano.errors import SwitchOverError, UnsafeFile
from meccano.files.bounded import read_bounded

MAX_ENV_FILE_BYTES = 1024 * 1024
_ASSIGNMENT = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)")
_DOUBLE_ESCAPES = {'"': '"', "\\": "\\", "$": "$", "`": "`"}


@dataclass(frozen=True)
class EnvEntry:
    name: str
    value: str | None  # None when ``problem`` says why it could not be read
    line: int
    problem: str | None = None


@dataclass(frozen=True)
class EnvFile:
    path: Path
    entries: tuple[EnvEntry, ...]  # one per variable: its last assignment
    not_read: tuple[int, ...]  # line numbers of lines that are not plain assignments

    def values(self) -> dict[str, str]:
        """The variables that were read, name -> value."""
        return {e.name: e.value for e in self.entries if e.value is not None}


def _needs_shell(text: str) -> bool:
    return "$" in text or "`" in text


def _double_quoted(body: str) -> tuple[str | None, str]:
    """(value, rest after the closing quote) of a value starting after ``"``; value None on a shell need."""
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body) and body[i + 1] in _DOUBLE_ESCAPES:
            out.append(body[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(out), body[i + 1:]
        if char in "$`":
            return None, ""
        out.append(char)
        i += 1
    raise ValueError("the closing \" is missing (a value over several lines is not read)")


def parse_value(raw: str) -> str:
    """The value of ``VAR=raw`` as bash would assign it; ValueError says why it is not read."""
    text = raw.rstrip()
    if text.startswith("'"):
        end = text.find("'", 1)
        if end < 0:
            raise ValueError("the closing ' is missing (a value over several lines is not read)")
        value, rest = text[1:end], text[end + 1:]
    elif text.startswith('"'):
        found, rest = _double_quoted(text[1:])
        if found is None:
            raise ValueError("the value uses the shell ($ or `); the file is never run: write the value itself")
        value = found
    else:
        value = text.partition(" #")[0]
        value, rest = value.strip(), ""
        if _needs_shell(value):
            raise ValueError("the value uses the shell ($ or `); the file is never run: write the value itself")
        if any(c in value for c in " \t;|&<>()"):
            raise ValueError("the unquoted value holds a space or a shell operator; quote it ('...')")
    rest = rest.strip()
    if rest and not rest.startswith("#"):
        raise ValueError("more follows the quoted value; write one plain assignment per line")
    return value


def parse_env_text(text: str) -> tuple[list[EnvEntry], list[int]]:
    """(the assignments, last one per variable, in file order; the line numbers not read)."""
    found: dict[str, EnvEntry] = {}
    not_read: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _ASSIGNMENT.fullmatch(stripped)
        if not match:
            not_read.append(number)
            continue
        name = match.group(1)
        found.pop(name, None)  # the last assignment wins, at its own place in the order
        try:
            found[name] = EnvEntry(name, parse_value(match.group(2)), number)
        except ValueError as exc:
            found[name] = EnvEntry(name, None, number, str(exc))
    return list(found.values()), not_read


def read_env_file(path: Path) -> EnvFile:
    """Read the variables file the operator named (a link to it, e.g. a dotfiles manager's, is followed)."""
    real = Path(os.path.realpath(path))
    try:
        data = read_bounded(real, MAX_ENV_FILE_BYTES)
    except FileNotFoundError:
        raise SwitchOverError(f"{path}: the variables file does not exist; name the file that exports the "
                             "original's variables (e.g. --env-file ~/.bash_profile)") from None
    except UnsafeFile as exc:
        raise SwitchOverError(f"{path}: the variables file {exc}") from None
    except OSError as exc:
        raise SwitchOverError(f"{path}: cannot read the variables file ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SwitchOverError(f"{path}: the variables file is not UTF-8 text") from None
    entries, not_read = parse_env_text(text)
    return EnvFile(path, tuple(entries), tuple(not_read))
