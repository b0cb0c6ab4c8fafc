"""The subprocess hook of the script engines: BashOperator's, with three guarantees added.

* **Secrets never reach the log or XCom**: every byte of output goes through a
  :class:`~meccano.secrets.redaction.StreamRedactor` before it is logged; the last line (what
  BashOperator pushes to XCom) is redacted too.
* **Reading stops when the process exits**: the output pipe is read with a timeout and
  the process is polled, so a grandchild that keeps the pipe open cannot hold the task.
* **Stopping is final**: on ``on_kill`` (Airflow's execution timeout, a task marked failed)
  or any exception while reading, the process group gets SIGTERM, then SIGKILL after the
  grace period. The runner (``runner.py``) leads that group and stops the processes
  that left it (own sessions) the same way.
* **Another OS user**: the command BashOperator hands over (``bash -c`` of the fixed command) is not
  run; the hook starts the runner itself with the user to run as (``MECCANO_RUN_AS``) on its command
  line and the job (the script's environment, the run folder, the folder it starts in) on its
  standard input, so no secret is on a command line or in the runner's own environment. A root worker
  starts it directly; any other worker through ``sudo -n`` (the image's rule allows exactly this
  command, see docker/Dockerfile and docs/security.md). sudo relays the SIGTERM of :meth:`stop` to the
  runner, and the runner stops everything when sudo is killed (its parent-death signal).
* **Or the worker itself** (``plugins.isolation: none``, ``as_worker``): the runner starts as the worker's own user
  with the script's environment as its own, and supervises the script the same way. (``pod``: not this hook, see
  :class:`meccano.scripts.pod.PodScriptHook`.)
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import selectors
import signal
import sys
import time
from collections.abc import Sequence
from subprocess import DEVNULL, PIPE, STDOUT, Popen, TimeoutExpired
from typing import Any

from airflow.providers.standard.hooks.subprocess import SubprocessHook, SubprocessResult

from meccano.secrets.redaction import StreamRedactor

TICK = 0.2
READ_CHUNK = 65536
# The runner gets ``grace`` to stop the script; the group gets this much more before SIGKILL.
EXTRA_GRACE = 5.0
RUNNER_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
# Redacted last lines of the output, added to the task's error (and the failure notification).
TAIL_LINES = 15
TAIL_CHARS = 4000


class ScriptProcessHook(SubprocessHook):
    """Runs the fixed script command; see the module docstring."""

    def __init__(self, secrets: Sequence[str], grace_seconds: float, as_worker: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._secrets = list(secrets)
        self._grace = grace_seconds
        self._as_worker = as_worker  # plugins.isolation none: the runner supervises the script as the worker
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)

    def tail_text(self) -> str:
        """The script's last output lines (already redacted), at most ``TAIL_CHARS`` characters."""
        return "\n".join(self._tail).strip()[-TAIL_CHARS:]

    def run_command(self, command: list[str], env: dict[str, str] | None = None, output_encoding: str = "utf-8",
                    cwd: str | None = None) -> SubprocessResult:
        job = dict(env or {})
        run_as, run_dir = job.pop("MECCANO_RUN_AS", ""), job.pop("MECCANO_RUN_DIR", "")
        if self._as_worker:
            proc = self._start_as_worker(job, cwd)
        elif not run_as or not run_dir:
            raise ValueError("a script runs only as the plugin user: MECCANO_RUN_AS and MECCANO_RUN_DIR are required")
        else:
            proc = self._start_as(run_as, {"env": job, "run_dir": run_dir, "cwd": cwd or run_dir})
        redactor = StreamRedactor(self._secrets)
        self._tail.clear()
        assert proc.stdout is not None
        last = ""
        try:
            for chunk in self._read_until_exit(proc):
                for line in redactor.feed(chunk):
                    last = self._log_line(line, output_encoding) or last
            for line in redactor.close():
                last = self._log_line(line, output_encoding) or last
        except BaseException:
            self.stop()  # AirflowTaskTimeout, KeyboardInterrupt, ...: nothing may survive
            raise
        finally:
            proc.stdout.close()
        self.log.info("Plugin script exited with return code %s", proc.returncode)
        return SubprocessResult(exit_code=proc.returncode, output=last)

    def _start_as(self, run_as: str, job: dict[str, Any]) -> Popen[bytes]:
        argv = runner_command(run_as)
        self.log.info("Running the plugin script as OS user %s (command: %s)", run_as, argv)
        self.sub_process = proc = Popen(argv, stdout=PIPE, stderr=STDOUT, stdin=PIPE, cwd="/", env=dict(RUNNER_ENV),
                                        start_new_session=True, restore_signals=True, close_fds=True)
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # a refusing sudo exits before reading; its output says why
            proc.stdin.write(json.dumps(job).encode())
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        return proc

    def _start_as_worker(self, env: dict[str, str], cwd: str | None) -> Popen[bytes]:
        """plugins.isolation none: the runner, as the worker's own user, reads the script's environment from its
        own (the operator's explicit choice: the script could read the worker's anyway)."""
        argv = runner_command(None)
        self.log.warning("Running the plugin script as the worker's own OS user (plugins.isolation: none)")
        self.sub_process = proc = Popen(argv, stdout=PIPE, stderr=STDOUT, stdin=DEVNULL, cwd=cwd, env=env,
                                        start_new_session=True, restore_signals=True, close_fds=True)
        return proc

    def _log_line(self, raw: bytes, encoding: str) -> str:
        line = raw.decode(encoding, errors="backslashreplace").rstrip()
        self.log.info("%s", line)
        self._tail.append(line)
        return line

    @staticmethod
    def _read_until_exit(proc: Popen[bytes]) -> Any:
        """Output chunks until the process has exited (not until every writer closed the pipe)."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            open_pipe = True
            while proc.poll() is None:
                if not open_pipe:
                    with contextlib.suppress(TimeoutExpired):
                        proc.wait(TICK)  # returns as soon as the runner exits
                    continue
                for _ in sel.select(TICK):
                    data = os.read(fd, READ_CHUNK)
                    if data:
                        yield data
                    else:
                        sel.unregister(fd)
                        open_pipe = False
        if open_pipe:  # what is in the pipe now; a writer that outlived the process is not waited for
            os.set_blocking(fd, False)
            with contextlib.suppress(BlockingIOError):
                for _ in range(64):
                    data = os.read(fd, READ_CHUNK)
                    if not data:
                        break
                    yield data

    def stop(self) -> None:
        """SIGTERM to the process group; SIGKILL to it when it has not ended after the grace period."""
        proc = self.sub_process
        if proc is None or proc.poll() is not None:
            return
        self.log.info("Stopping the plugin script: SIGTERM to its process group")
        self._signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self._grace + EXTRA_GRACE
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None:
            self.log.warning("The plugin script ignored SIGTERM for %.0f s: SIGKILL", self._grace + EXTRA_GRACE)
            self._signal_group(proc.pid, signal.SIGKILL)
            proc.wait()

    @staticmethod
    def _signal_group(pgid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    def send_sigterm(self) -> None:
        """BashOperator's ``on_kill``: stop, with the escalation above."""
        self.stop()


def runner_command(run_as: str | None) -> list[str]:
    """The runner's command line: exactly what the image's sudo rule allows (real paths, no options left to
    the environment: ``-I -S`` ignore PYTHON* variables and site folders), behind ``sudo -n`` unless root.
    ``None``: the runner as the worker itself (plugins.isolation none), no user, no sudo."""
    # lazy: meccano.scripts.environment costs 19 ms at import (python -X importtime)
    from meccano.scripts.environment import SCRIPT_RUNNER

    command = [os.path.realpath(sys.executable), "-I", "-S", os.path.realpath(SCRIPT_RUNNER)]
    if run_as is None:
        return command
    command.append(run_as)
    return command if os.geteuid() == 0 else ["sudo", "-n", "--", *command]
