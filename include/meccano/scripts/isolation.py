"""How a script plugin (R, python, nodejs) is kept from the worker: ``plugins.isolation``.

* ``user`` (the default): the script runs as the OS user ``plugins.runAs`` (:mod:`meccano.scripts.runner`).
  Switching users needs root: a root worker starts the runner itself, any other worker through the image's one
  ``sudo`` rule. sudo is a setuid program, so it cannot work under *no new privileges* (``NoNewPrivs: 1`` in
  ``/proc/self/status``): Kubernetes sets that for ``allowPrivilegeEscalation: false``, the restricted Pod
  Security Standard and the official chart's hardening guidance require it, and managed Airflows run that way.
* ``pod``: every script runs in a Kubernetes pod of its own (:mod:`meccano.scripts.pod`), as the plugin user's uid,
  under a restricted security context; the worker needs no privilege at all.
* ``none``: the operator's explicit choice for trusted script authors: scripts run as the worker's own user.

:func:`isolation_problem` says why this worker cannot do what is chosen (a script task fails at once with it,
``db check`` and the Meccano page name it); :func:`isolation_notice` says plainly that ``none`` is in force.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from meccano.errors import PluginUserMissing, ScriptIsolationUnavailable
from meccano.problems import Problem
from meccano.settings.config import IsolationMode
from meccano.settings.prerequisites import missing

if TYPE_CHECKING:
    from meccano.settings.config import Settings

SETTING = "plugins.isolation (MECCANO_PLUGIN_ISOLATION)"
PROVIDER = "apache-airflow-providers-cncf-kubernetes"
SUDO_CHECK_SECONDS = 20


def no_new_privs(status: Path = Path("/proc/self/status")) -> bool:
    """Whether this process runs with no_new_privs (setuid programs such as sudo gain nothing)."""
    try:
        text = status.read_text()
    except OSError:
        return False
    return any(line.split(":", 1)[1].strip() == "1" for line in text.splitlines() if line.startswith("NoNewPrivs:"))


def switch_problem(user: str) -> str | None:
    """Why this process cannot start a script as ``user`` (None: it can). Root can; any other uid only through
    ``sudo -n`` and the one rule of the image, which no_new_privs makes unusable."""
    uid = os.geteuid()
    if uid == 0:
        return None
    if no_new_privs():
        return (f"it runs as uid {uid}, not root, with no_new_privs set (NoNewPrivs: 1 in /proc/self/status: "
                "Kubernetes' allowPrivilegeEscalation: false, or a parent that set it), so sudo's setuid cannot "
                "switch users")
    sudo = shutil.which("sudo")
    if sudo is None:
        return f"it runs as uid {uid}, not root, and sudo is not installed"
    # lazy: meccano.scripts.hook costs 1064 ms at import (python -X importtime)
    from meccano.scripts.hook import runner_command

    command = runner_command(user)[3:]  # without "sudo -n --"
    try:
        done = subprocess.run([sudo, "-n", "-l", "--", *command], capture_output=True, text=True,
                              timeout=SUDO_CHECK_SECONDS, stdin=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"it runs as uid {uid}, not root, and `sudo -n -l` could not be asked ({type(exc).__name__})"
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()[:1]
        return (f"it runs as uid {uid}, not root, and sudo does not let it start the runner as root without a "
                f"password ({said[0][:200] if said else 'refused'}): the image's rule (docker/Dockerfile) is missing "
                "or names another user or path")
    return None


def plugin_user_fix(user: str) -> str:
    """How to create the OS user script plugins run as (named by ``db check`` and by a task that needs it)."""
    return ("scripts/plugin-user.sh (bare hosts; the image has it), or `useradd --system --user-group "
            f"--no-create-home --shell /usr/sbin/nologin {user}`")


def isolation_fix(mode: str) -> str:
    """The ways out of a worker that cannot isolate scripts as ``mode`` asks."""
    if mode == IsolationMode.POD:
        return (f"install the {PROVIDER} provider and set plugins.podImage (docs/kubernetes.md); or set {SETTING} "
                "to user (a worker that can switch users) or none (trusted script authors only)")
    return ("run the worker as root; or let it use the image's sudo rule (allow privilege escalation: Kubernetes "
            f"securityContext.allowPrivilegeEscalation: true on the worker container); or set {SETTING} to pod "
            "(a Kubernetes pod per script, docs/kubernetes.md) or to none (scripts run as the worker's own user: "
            "only for script authors you trust, docs/security.md)")


def isolation_reason(settings: Settings) -> str | None:
    """Why this worker cannot isolate scripts as ``plugins.isolation`` asks (None: it can, or the mode is none).
    A missing plugin user is :func:`plugin_user_problem`'s to name."""
    mode = settings.plugins.isolation
    if mode == IsolationMode.USER:
        why = switch_problem(settings.plugins.run_as)
        return None if why is None else f"this worker cannot start a script as {settings.plugins.run_as!r}: {why}"
    if mode == IsolationMode.POD:
        return pod_problem(settings)
    return None


def isolation_problem(settings: Settings) -> str | None:
    """:func:`isolation_reason` as the whole message of a failed task: the setting, the reason, every fix."""
    reason = isolation_reason(settings)
    if reason is None:
        return None
    mode = settings.plugins.isolation
    return f"{SETTING} is '{mode}', but {reason}. Fix one of: {isolation_fix(mode)}"


def pod_problem(settings: Settings) -> str | None:
    """What the ``pod`` isolation lacks on this worker: the provider, the image, a readable pod template."""
    plugins = settings.plugins
    lacks = []
    if importlib.util.find_spec("airflow.providers.cncf") is None \
            or importlib.util.find_spec("airflow.providers.cncf.kubernetes") is None:
        lacks.append(f"the {PROVIDER} provider is not installed on this worker (requirements.txt pins it)")
    if not plugins.pod_image:
        lacks.append("plugins.podImage (MECCANO_PLUGIN_POD_IMAGE) is empty: it names the workers' own image, which "
                     "holds the interpreters, the runner and the plugin user")
    if plugins.pod_template_file and not os.path.isfile(plugins.pod_template_file):
        lacks.append(f"plugins.podTemplateFile (MECCANO_PLUGIN_POD_TEMPLATE): {plugins.pod_template_file} is not a "
                     "file on this worker")
    return "; ".join(lacks) or None


def plugin_user_problem(settings: Settings, euid: int | None = None) -> str | None:
    """Why ``plugins.runAs`` cannot be the user scripts run as, for ``user`` (to switch to it) and ``pod`` (its uid
    and gid): no such OS user on this worker, root's uid or group, or the worker's own user (a script would then read
    every environment and file of the worker). ``euid``: the worker's, this process's by default."""
    if settings.plugins.isolation == IsolationMode.NONE:
        return None
    user = settings.plugins.run_as
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return (f"plugins.runAs (MECCANO_PLUGIN_RUN_AS): there is no OS user {user!r} on this worker, and script "
                f"plugins never run as the worker's own user. Create it: {plugin_user_fix(user)}")
    worker = os.geteuid() if euid is None else euid
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        return (f"plugins.runAs (MECCANO_PLUGIN_RUN_AS): {user!r} has uid {entry.pw_uid} and gid {entry.pw_gid}; "
                "scripts never run as root or in root's group: name the unprivileged user made for them")
    if entry.pw_uid == worker:
        return (f"plugins.runAs (MECCANO_PLUGIN_RUN_AS): {user!r} is this worker's own OS user (uid {worker}); a "
                "script running as it could read every process environment and file of the worker: name the "
                f"unprivileged user made for scripts ({plugin_user_fix('meccano-plugin')}) or choose {SETTING} none")
    return None


def isolation_missing(settings: Settings) -> list[Problem]:
    """What the chosen ``plugins.isolation`` lacks on this host: the plugin user, a worker that can switch to it,
    the pod isolation's provider and image (``db check``, ``config show`` and the Meccano page list it)."""
    found = []
    user, mode = settings.plugins.run_as, settings.plugins.isolation
    problem = plugin_user_problem(settings)
    if problem:
        found.append(missing(f"a usable OS user for plugins.runAs ({user!r})", problem, plugin_user_fix(user)))
    reason = isolation_reason(settings)
    if reason:
        found.append(missing(f"script isolation ({SETTING}: {mode})",
                             f"{reason}; every R, python and nodejs task fails at once on such a worker",
                             isolation_fix(mode)))
    return found


def isolation_notice(settings: Settings) -> str | None:
    """A plain statement when scripts are not isolated (``none``): for ``db check`` and the Meccano page."""
    if settings.plugins.isolation != IsolationMode.NONE:
        return None
    return (f"{SETTING} is 'none': R, python and nodejs plugins run as the worker's own OS user and can read what "
            "it can (its environment and Airflow's connections, other tasks' files, its processes' memory). Only "
            "for script authors you trust; otherwise choose user or pod (docs/security.md)")


def check_isolation(settings: Settings) -> None:
    """Raise before a script starts when this worker cannot isolate it as ``plugins.isolation`` asks."""
    missing_user = plugin_user_problem(settings)
    if missing_user:
        raise PluginUserMissing(missing_user)
    problem = isolation_problem(settings)
    if problem:
        raise ScriptIsolationUnavailable(problem)
