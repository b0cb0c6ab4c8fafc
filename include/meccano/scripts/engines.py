"""The script engines (``R``, ``python``, ``nodejs``): each one's interpreter, what a host needs to run it, and the
one fixed command every script plugin runs through.

No part of a name or path is ever put into the shell command (they reach the process through environment
variables), so a plugin name cannot inject a command. The environment is built explicitly
(:mod:`meccano.scripts.environment`), the processes are supervised by :mod:`meccano.scripts.runner` and the output
is redacted by :mod:`meccano.scripts.hook`.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass

from meccano.contract.manifest import Engine
from meccano.errors import PluginError


@dataclass(frozen=True)
class ScriptEngine:
    interpreter: str
    install_hint: str
    needs: str  # what a plugin of this engine needs, as the demo and the web listing say it ("needs R")
    package: str  # the Debian package that brings the interpreter


SCRIPT_ENGINES: dict[str, ScriptEngine] = {
    Engine.R: ScriptEngine("Rscript", "install R with `apt-get install r-base-core r-cran-dbi r-cran-rmysql` "
                      "(or your distribution's R and RMySQL packages)", "R", "r-base-core"),
    Engine.PYTHON: ScriptEngine(sys.executable, "install Python 3", "Python", "python3"),
    Engine.NODEJS: ScriptEngine("node", "install Node.js (`apt-get install nodejs`); the original in-process node.js "
                           "plugins also need the runner's npm packages (scripts/install-node-deps.sh)",
                           "Node.js", "nodejs"),
}

# The fixed command every script plugin runs through: names and paths come from the
# environment, quoted by bash itself, never interpolated into the command text.
SCRIPT_COMMAND = 'exec "$MECCANO_PYTHON" "$MECCANO_SCRIPT_RUNNER"'


def missing_interpreter(engine: str) -> ScriptEngine | None:
    """The script engine ``engine`` when its interpreter is not on this host's PATH, else None (the
    native engine runs in Airflow's own Python; the python engine's interpreter is this one).

    The one "can this engine run here" check: the demo leaves such plugins paused and the web listing
    marks them. It answers for the host that asks (a worker without R still fails its R tasks)."""
    spec = SCRIPT_ENGINES.get(engine)
    if spec is None or shutil.which(spec.interpreter):
        return None
    return spec


def interpreter_path(engine: str) -> str:
    spec = SCRIPT_ENGINES[engine]
    found = shutil.which(spec.interpreter)
    if not found:
        raise PluginError(f"the {engine} engine needs `{spec.interpreter}`, which is not on PATH: "
                          f"{spec.install_hint}")
    return found
