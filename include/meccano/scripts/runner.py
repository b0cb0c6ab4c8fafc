"""Runs one script plugin and makes sure that nothing it started outlives it.

Started by the script engines' fixed command (``exec python runner.py``, stdlib
only: no Airflow import, so it costs nothing). The operator's hook starts it in a new
session, so this runner leads its own process group and the script runs in that group.

What it guarantees, whatever the script does:

* **A deadline**: ``MECCANO_TIMEOUT_SECONDS`` (the plugin's ``timeoutMinutes``, else the
  default timeout setting). When it passes, the script is stopped and the exit code is 124.
* **Stopping means stopping**: on the deadline, or when the runner gets SIGTERM/SIGINT/SIGHUP
  (Airflow's ``on_kill``, a timeout of the task), every descendant gets SIGTERM, then SIGKILL
  after ``MECCANO_KILL_GRACE_SECONDS``. Descendants are found through ``/proc``; the runner is
  a *child subreaper* (Linux ``PR_SET_CHILD_SUBREAPER``), so a grandchild that forks away
  into its own session is re-parented to the runner, not to PID 1, and is found and killed
  too. Everything killed is reaped (no zombie is left behind).
* **Reading stops when the script exits**: a background child that keeps the output pipe
  open does not hold the task; what it still holds is stopped the same way.

Output is relayed as raw bytes; the operator's hook removes secrets from it (it knows them,
this process does not need to). Exit code: the script's, 124 on timeout, 128 + signal when
stopped by a signal.

    python runner.py   (reads MECCANO_INTERPRETER and MECCANO_PLUGIN_SOURCE)
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

TIMEOUT_EXIT = 124
PR_SET_CHILD_SUBREAPER = 36
# Names the runner reads; not passed on to the script.
CONTROL = ("MECCANO_PYTHON", "MECCANO_SCRIPT_RUNNER", "MECCANO_TIMEOUT_SECONDS", "MECCANO_KILL_GRACE_SECONDS",
           "MECCANO_NODE_RUNNER")
READ_CHUNK = 65536
TICK = 0.2


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def descendants(root: int) -> list[int]:
    """Every living process below ``root`` (from /proc; empty where there is no /proc)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    out: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _reap() -> None:
    """Collect every exited child (orphans come to us as subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def stop_all(grace: float, script: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM to every descendant, SIGKILL to what is left after ``grace`` seconds."""
    me = os.getpid()
    _signal_all(descendants(me), signal.SIGTERM)
    if script is not None and script.poll() is None and not descendants(me):
        # No /proc (not Linux): the process group is all we can reach.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            script.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if script is not None:
            script.poll()
        _reap()
        if not descendants(me) and (script is None or script.returncode is not None):
            return
        time.sleep(0.05)
    for _ in range(100):  # SIGKILL until nothing is left (a fork race may need a second pass)
        left = descendants(me)
        if script is not None and script.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                script.kill()
        if not left and (script is None or script.returncode is not None):
            break
        _signal_all(left, signal.SIGKILL)
        time.sleep(0.02)
        if script is not None:
            script.poll()
        _reap()
    _reap()


def _drain(fd: int, out: BinaryIO) -> None:
    """What the pipe holds right now, without waiting for its writers to close it."""
    os.set_blocking(fd, False)
    for _ in range(64):
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return
            raise
        if not data:
            return
        _write(out, data)


def _write(out: BinaryIO, data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError):
        out.write(data)
        out.flush()


def _float_env(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


def _relay(script: subprocess.Popen[bytes], pipe: int, rfd: int, out: BinaryIO, deadline: float,
           stopped_by: list[int]) -> bool:
    """Copy the script's output to ``out`` until it exits, a signal is noted in ``stopped_by``
    (``rfd`` wakes the wait) or ``deadline`` passes; True when the deadline passed."""
    pipe_open = True
    with selectors.DefaultSelector() as sel:
        sel.register(pipe, selectors.EVENT_READ)
        sel.register(rfd, selectors.EVENT_READ)
        while not stopped_by and script.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            if pipe_open:
                pipe_open = _copy_ready(sel, pipe, out, min(TICK, left))
            else:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    script.wait(min(TICK, left))  # returns at once when it exits; signals still run
    return False


def _copy_ready(sel: selectors.BaseSelector, pipe: int, out: BinaryIO, wait: float) -> bool:
    """Copy what ``pipe`` has within ``wait`` seconds; False once the script closed its output."""
    for key, _ in sel.select(wait):
        if key.fd == pipe:
            data = os.read(pipe, READ_CHUNK)
            if not data:  # the script closed its output (or exited): watch the process itself
                sel.unregister(pipe)
                return False
            _write(out, data)
    return True


def main() -> int:
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    timeout = _float_env("MECCANO_TIMEOUT_SECONDS", 3600.0)
    grace = _float_env("MECCANO_KILL_GRACE_SECONDS", 10.0)
    stopped_by: list[int] = []
    rfd, wfd = os.pipe()
    os.set_blocking(wfd, False)

    def on_signal(signum: int, _frame: object) -> None:
        stopped_by.append(signum)
        with contextlib.suppress(BlockingIOError):
            os.write(wfd, b"!")

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    env = {k: v for k, v in os.environ.items() if k not in CONTROL}
    out = sys.stdout.buffer
    # an original in-process node.js plugin: node runs the shipped runner, which loads the plugin module
    loader = [os.environ["MECCANO_NODE_RUNNER"]] if os.environ.get("MECCANO_NODE_RUNNER") else []
    script = subprocess.Popen([os.environ["MECCANO_INTERPRETER"], *loader, os.environ["MECCANO_PLUGIN_SOURCE"]],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env=env, close_fds=True)
    assert script.stdout is not None
    pipe = script.stdout.fileno()
    timed_out = _relay(script, pipe, rfd, out, time.monotonic() + timeout, stopped_by)
    if timed_out or stopped_by:
        why = (f"timed out after {timeout:g} s" if timed_out
               else f"stopped by signal {signal.Signals(stopped_by[0]).name}")
        _write(out, f"\n[meccano] plugin {why}: SIGTERM to its processes, SIGKILL after {grace:g} s\n".encode())
        stop_all(grace, script)
    else:
        script.wait()
        _drain(pipe, out)
        if descendants(os.getpid()):  # background children of a finished script
            _write(out, b"[meccano] the plugin left processes running; stopping them\n")
            stop_all(grace)
    script.stdout.close()
    _reap()  # orphans that exited on their own: no zombie is handed to PID 1
    if timed_out:
        return TIMEOUT_EXIT
    if stopped_by:
        return 128 + stopped_by[0]
    code = script.returncode
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    raise SystemExit(main())
