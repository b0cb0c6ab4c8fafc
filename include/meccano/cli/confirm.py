"""Whether a destructive action may go on: ``--yes``, else the operator's answer on a terminal.

As Airflow's ``db downgrade`` does: "Proceed? (y/n)" when stdin is a terminal; without one (a job, a
pipe, CI) nobody can answer, so the action needs ``--yes`` and is refused otherwise (the plan is
printed first, by the caller). A refused action changes nothing; the command exits 1.
"""

from __future__ import annotations

import sys
from typing import TextIO

EXIT_OK = 0  # done, or nothing to do
EXIT_PROBLEM = 1  # a problem was found, or the action was refused / not confirmed
EXIT_USAGE = 2  # the command line or the configuration is wrong


def confirmed(yes: bool, action: str, stdin: TextIO | None = None, err: TextIO | None = None) -> bool:
    """True when ``action`` may run: ``yes``, or the operator answered y on the terminal."""
    if yes:
        return True
    stdin = stdin or sys.stdin
    err = err or sys.stderr
    if not stdin.isatty():
        print(f"{action}: not done: it needs confirmation and there is no terminal to ask on; "
              "re-run with --yes (-y) to proceed with the plan above", file=err)
        return False
    print("Proceed? (y/n) ", end="", flush=True, file=err)
    answer = stdin.readline().strip().lower()
    if answer in ("y", "yes"):
        return True
    print(f"{action}: not done (answered {answer or 'nothing'!r}); nothing was changed", file=err)
    return False
