"""Runs one script plugin and relays its output with every secret replaced by ``***``.

Started by the script engines' fixed command (stdlib only, no Airflow import, so it
costs nothing). Airflow masks registered secrets in its own log handlers, but a
script printing its environment must not depend on how logging happens to be
configured: the secrets named in ``MECCANO_REDACT`` are removed before any line
leaves the plugin's process.

    python script_runner.py   (reads MECCANO_INTERPRETER and MECCANO_PLUGIN_SOURCE)
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys

TAIL_LINES = 15


def redact(line: str, secrets: list[str]) -> str:
    for secret in secrets:
        line = line.replace(secret, "***")
    return line


def main() -> int:
    secrets = sorted({os.environ.get(name, "") for name in os.environ.get("MECCANO_REDACT", "").split(",")} - {""},
                     key=len, reverse=True)
    proc = subprocess.Popen([os.environ["MECCANO_INTERPRETER"], os.environ["MECCANO_PLUGIN_SOURCE"]],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    for raw in proc.stdout:
        line = redact(raw.decode("utf-8", errors="replace"), secrets)
        tail.append(line)
        sys.stdout.write(line)
        sys.stdout.flush()
    code = proc.wait()
    if code and os.environ.get("MECCANO_OUTPUT_TAIL"):
        # the last lines go into the task's error (and the administrators' failure notification)
        with open(os.environ["MECCANO_OUTPUT_TAIL"], "w", encoding="utf-8") as handle:
            handle.write("".join(tail)[-4000:])
    return code


if __name__ == "__main__":
    raise SystemExit(main())
