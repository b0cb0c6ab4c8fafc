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

* **Another OS user** (``python runner.py USER``, the way the operator's hook starts it): the job comes on
  standard input as JSON (``env``: the script's whole environment and the runner's ``MECCANO_*`` control
  values; ``run_dir``: the run folder; ``cwd``). The runner must be root (a root worker, or ``sudo`` in the
  image, whose rule pins ``USER`` in the command line): it hands the run folder's contents to ``USER`` (the
  folder itself stays the caller's, mode 0711, so ``report/`` and its siblings cannot be renamed or replaced by a
  link; every change of owner or mode goes through a descriptor opened with ``O_NOFOLLOW``, see :func:`_give`,
  so a name swapped for a link during the walk changes nothing), starts the script as ``USER`` (no supplementary groups,
  umask 077, no new privileges; it enters its folder only after the switch), stays root itself so the
  script can neither signal nor trace it and every descendant stays killable, and hands the folder back
  to the calling user (``SUDO_UID``, else its own uid) once nothing of the script runs any more.
  ``USER`` may not be root.

    python runner.py        (reads MECCANO_INTERPRETER and MECCANO_PLUGIN_SOURCE from its environment)
    python runner.py USER   (reads the job from standard input)
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import json
import os
import pwd
import selectors
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TIMEOUT_EXIT = 124
PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
REFUSED_EXIT = 126  # the job cannot start as asked (no such user, not root, a bad run folder)
# Names the runner reads; not passed on to the script.
CONTROL = ("MECCANO_PYTHON", "MECCANO_SCRIPT_RUNNER", "MECCANO_TIMEOUT_SECONDS", "MECCANO_KILL_GRACE_SECONDS",
           "MECCANO_NODE_RUNNER", "MECCANO_RUN_AS", "MECCANO_RUN_DIR")
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


def _float_env(environ: dict[str, str], name: str, default: float) -> float:
    try:
        value = float(environ.get(name, ""))
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


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who the script runs as and who gets the run folder back."""

    uid: int
    gid: int
    caller_uid: int
    caller_gid: int


def _identity(user: str) -> Identity:
    if os.geteuid() != 0:
        raise PermissionError(f"the runner must start as root to run the script as {user!r} (uid {os.geteuid()} "
                              "here): a worker that is not root starts it through sudo (docker/Dockerfile's rule)")
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise PermissionError(f"no OS user {user!r} on this host: create it with scripts/plugin-user.sh "
                              "(or useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "
                              f"{user})") from None
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise PermissionError(f"{user!r} has uid or gid 0: scripts never run as root or in root's group")
    caller_uid = int(os.environ.get("SUDO_UID") or os.getuid())  # sudo sets these itself, the caller cannot
    caller_gid = int(os.environ.get("SUDO_GID") or os.getgid())
    return Identity(entry.pw_uid, entry.pw_gid, caller_uid, caller_gid)


MAX_HANDED_ENTRIES = 200_000  # a hostile concurrent run could keep adding entries: the walk ends all the same
_ENTRY_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_RUN_ROOT_MODE_DURING = 0o711  # the plugin user may pass through the run folder, never add, rename or remove in it
_RUN_ROOT_MODE_AFTER = 0o700


def _give(dir_fd: int, name: str, from_uid: int, to_uid: int, to_gid: int, keep_writable: bool) -> bool:
    """Give the folder or regular file ``name`` (in ``dir_fd``) to ``to_uid`` when ``from_uid`` owns it.

    Everything goes through one descriptor opened without following links (``O_NOFOLLOW``, never blocking on a
    pipe or a lease): a name the plugin user swaps for a symlink or another file between two calls makes the open
    fail or the descriptor show another inode, owner or type, and nothing is changed. Symlinks, pipes, sockets and
    devices are never given: they stay as they are, and the caller owns their folder, so it can still remove them.
    Set-id and sticky bits are always cleared; ``keep_writable`` False also clears group and other write (the hand
    back: once the caller has it, the plugin user may not change it through a descriptor it kept open).
    """
    try:
        seen = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    if seen.st_uid != from_uid or not (stat.S_ISDIR(seen.st_mode) or stat.S_ISREG(seen.st_mode)):
        return False
    try:
        fd = os.open(name, _ENTRY_FLAGS, dir_fd=dir_fd)
    except OSError:  # a symlink now (ELOOP), gone, a lease held: left as it is
        return False
    try:
        info = os.fstat(fd)
        same = (info.st_ino, info.st_dev, stat.S_IFMT(info.st_mode)) == (seen.st_ino, seen.st_dev,
                                                                           stat.S_IFMT(seen.st_mode))
        if not same or info.st_uid != from_uid:
            return False
        if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
            return False  # also linked elsewhere: whoever holds the other name would keep a file of the new owner
        os.fchown(fd, to_uid, to_gid)
        mode = stat.S_IMODE(info.st_mode) & ~0o7000
        os.fchmod(fd, mode if keep_writable else mode & ~0o022)
        return True
    finally:
        os.close(fd)


def _open_run_root(top: str, owner: int) -> int:
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    info = os.fstat(fd)
    if info.st_uid != owner:
        os.close(fd)
        raise PermissionError(f"run folder {top}: owned by uid {info.st_uid}, not by the caller (uid {owner})")
    return fd


def _give_beneath(top_fd: int, from_uid: int, to_uid: int, to_gid: int, keep_writable: bool) -> int:
    """Give what ``from_uid`` owns beneath the open folder ``top_fd`` (not the folder itself); the count walked."""
    walked = 0
    for _root, dirs, files, dir_fd in os.fwalk(top=".", dir_fd=top_fd, follow_symlinks=False):
        for name in dirs + files:
            walked += 1
            if walked > MAX_HANDED_ENTRIES:
                return walked
            _give(dir_fd, name, from_uid, to_uid, to_gid, keep_writable)
    return walked


def hand_over(top: str, who: Identity) -> None:
    """Give the run folder's contents to the plugin user. The run folder itself stays the caller's (mode 0711): the
    plugin user can reach what is in it but can neither rename ``report/`` nor put a link in its place."""
    fd = _open_run_root(top, who.caller_uid)
    try:
        os.fchmod(fd, _RUN_ROOT_MODE_DURING)
        _give_beneath(fd, who.caller_uid, who.uid, who.gid, keep_writable=True)
    finally:
        os.close(fd)


def hand_back(top: str, who: Identity) -> None:
    """Give the run folder's contents back to the caller, through descriptors only (see :func:`_give`)."""
    fd = _open_run_root(top, who.caller_uid)
    try:
        os.fchmod(fd, _RUN_ROOT_MODE_AFTER)
        walked = _give_beneath(fd, who.uid, who.caller_uid, who.caller_gid, keep_writable=False)
        if walked > MAX_HANDED_ENTRIES:
            _write(sys.stdout.buffer, f"[meccano] the plugin left over {MAX_HANDED_ENTRIES:,} entries in its run "
                                      "folder; only the first were handed back\n".encode())
    finally:
        os.close(fd)


def _become(who: Identity, cwd: str) -> Callable[[], None]:
    """In the script's process before it starts: drop every privilege, then enter ``cwd`` as that user (so a
    folder the user may not enter is refused, whoever asked for it). The runner has no threads."""
    def drop() -> None:
        os.setgroups([])
        os.setgid(who.gid)
        os.setuid(who.uid)
        if os.getuid() == 0 or os.geteuid() == 0:
            raise PermissionError("the script would still run as root")
        os.umask(0o077)
        os.chdir(cwd)
    return drop


def _read_job() -> dict[str, object]:
    try:
        job = json.loads(sys.stdin.buffer.read() or b"null")
    except ValueError as exc:
        raise PermissionError(f"the job on standard input is not JSON ({exc})") from None
    if not isinstance(job, dict) or not isinstance(job.get("env"), dict) or not isinstance(job.get("run_dir"), str) \
            or not os.path.isabs(str(job["run_dir"])):
        raise PermissionError("the job on standard input needs env (an object) and run_dir (an absolute path)")
    return job


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        return supervise(dict(os.environ))
    try:
        who = _identity(args[0])
        job = _read_job()
    except (PermissionError, ValueError) as exc:
        _write(sys.stdout.buffer, f"[meccano] plugin not started: {exc}\n".encode())
        return REFUSED_EXIT
    env = {str(k): str(v) for k, v in dict(job["env"]).items()}  # type: ignore[call-overload]
    run_dir = str(job["run_dir"])
    try:
        hand_over(run_dir, who)
    except OSError as exc:
        _write(sys.stdout.buffer, f"[meccano] plugin not started: {exc}\n".encode())
        return REFUSED_EXIT
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # the caller (or sudo) is gone: stop everything as on SIGTERM
        _prctl(PR_SET_NO_NEW_PRIVS, 1)  # no setuid program (sudo, su) gives the script more than USER has
        return supervise(env, who, str(job.get("cwd") or run_dir))
    finally:
        hand_back(run_dir, who)


def supervise(environ: dict[str, str], who: Identity | None = None, cwd: str | None = None) -> int:
    """Run the script (as ``who`` when given) until it ends, its deadline passes or a signal stops it."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    timeout = _float_env(environ, "MECCANO_TIMEOUT_SECONDS", 3600.0)
    grace = _float_env(environ, "MECCANO_KILL_GRACE_SECONDS", 10.0)
    stopped_by: list[int] = []
    rfd, wfd = os.pipe()
    os.set_blocking(wfd, False)

    def on_signal(signum: int, _frame: object) -> None:
        stopped_by.append(signum)
        with contextlib.suppress(BlockingIOError):
            os.write(wfd, b"!")

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    env = {k: v for k, v in environ.items() if k not in CONTROL}
    out = sys.stdout.buffer
    # an original in-process node.js plugin: node runs the shipped runner, which loads the plugin module
    loader = [environ["MECCANO_NODE_RUNNER"]] if environ.get("MECCANO_NODE_RUNNER") else []
    argv = [environ["MECCANO_INTERPRETER"], *loader, environ["MECCANO_PLUGIN_SOURCE"]]
    script = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env=env, close_fds=True, cwd=cwd if who is None else None,
                              preexec_fn=None if who is None else _become(who, cwd or "/"))
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
