"""The original ServiceManager's in-process node.js plugins, run as they are.

Such a plugin is a module the original loaded into its own process (``exports.entrypoint``,
``require('../config')``, ``require('../mysql')``, ``require('../aws')``), not a script: ``node file.js``
would never call ``entrypoint``. :data:`NODE_RUNNER` (``node/original_runner.js``, shipped with the
package) provides those three modules, calls ``entrypoint()`` and waits until its work is done. It runs
as the plugin's process under :mod:`meccano.scripts.runner`, so the explicit environment, the output
redaction, the time limit and the supervised process tree are those of every script plugin. Its npm
packages (``mysql2``, ``@aws-sdk/client-sns``) are pinned by ``node/package-lock.json`` and installed by
``scripts/install-node-deps.sh`` (``make test``) and the image.
"""

from __future__ import annotations

import re
from pathlib import Path

from meccano.errors import UnsafeFile
from meccano.files.bounded import read_bounded

NODE_DIR = Path(__file__).with_name("node")
NODE_RUNNER = NODE_DIR / "original_runner.js"
RUNNER_VARIABLE = "MECCANO_NODE_RUNNER"  # set: the runner starts `node <NODE_RUNNER> <plugin>.js`
NPM_PACKAGES = ("mysql2", "@aws-sdk/client-sns")
MAX_SOURCE_BYTES = 2 * 1024 * 1024
_IN_PROCESS = re.compile(r"\bexports\.entrypoint\b|require\(\s*['\"]\.\./(?:config|mysql|aws)['\"]\s*\)")


def is_in_process_text(source: str) -> bool:
    """Whether node.js source is an original in-process plugin (it exports ``entrypoint`` or requires
    ``../config``, ``../mysql`` or ``../aws``)."""
    return bool(_IN_PROCESS.search(source))


def is_in_process(source: Path) -> bool:
    try:
        text = read_bounded(source, MAX_SOURCE_BYTES).decode("utf-8", "replace")
    except (OSError, UnsafeFile):
        return False  # unreadable: node itself reports it when the script runs
    return is_in_process_text(text)


def runner_problem() -> str | None:
    """None when the runner's npm packages are installed, else what to run."""
    missing = [name for name in NPM_PACKAGES if not (NODE_DIR / "node_modules" / name / "package.json").is_file()]
    if not missing:
        return None
    return (f"the runner of the original in-process node.js plugins lacks its npm packages ({', '.join(missing)} "
            f"in {NODE_DIR / 'node_modules'}): run scripts/install-node-deps.sh (npm ci from package-lock.json)")
