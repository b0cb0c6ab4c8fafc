"""The command of a script pod (``plugins.isolation: pod``): stdlib only, like the runner it starts.

In the pod (the workers' image, the plugin user's uid, a read-only root filesystem): copy the plugin folder of the
image (``MECCANO_PLUGIN_ORIGIN``) into the run folder (an ``emptyDir`` at ``MECCANO_POD_RUN_DIR``), make the
report folder, ``HOME`` and ``TMPDIR`` there, and run the script under the runner's supervision (its deadline,
its kill of the whole tree). The script's output goes to the pod's log, which the worker relays (redacted by
Airflow's masker). What comes back to the worker is written to the provider's XCom file
(``/airflow/xcom/return.json``, read by its sidecar): the script's exit code and the report folder's regular
files (base64, at most ``MAX_REPORT_BYTES`` in all). The pod itself exits 0 once that file is written, so the
worker judges the script's exit code the way it judges a script run on the worker.

    python -I pod_entry.py
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import stat
import sys
import time
from pathlib import Path
from types import ModuleType

XCOM_FILE = Path("/airflow/xcom/return.json")
MAX_REPORT_BYTES = 16 * 1024 * 1024
POD_CONTROL = ("MECCANO_PLUGIN_ORIGIN", "MECCANO_POD_RUN_DIR", "MECCANO_POD_XCOM_FILE")


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("meccano_script_runner", Path(__file__).with_name("runner.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _plain(directory: str, names: list[str]) -> set[str]:
    """Entries of the plugin folder that are neither folders, regular files nor symlinks: not copied."""
    skipped = set()
    for name in names:
        mode = os.lstat(os.path.join(directory, name)).st_mode
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            skipped.add(name)
    return skipped


def collect_report(report: Path, limit: int = MAX_REPORT_BYTES) -> tuple[dict[str, str], list[str]]:
    """The report folder's regular files (relative path -> base64), links and special files left out, until
    ``limit`` bytes; and what was left out."""
    files: dict[str, str] = {}
    skipped: list[str] = []
    total = 0
    for root, dirs, names in os.walk(report, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            path = Path(root, name)
            relative = str(path.relative_to(report))
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode) or total + info.st_size > limit:
                skipped.append(relative)
                continue
            total += info.st_size
            files[relative] = base64.b64encode(path.read_bytes()).decode("ascii")
    return files, skipped


def main() -> int:
    env = dict(os.environ)
    origin = Path(env["MECCANO_PLUGIN_ORIGIN"])
    run = Path(env["MECCANO_POD_RUN_DIR"])
    xcom = Path(env.get("MECCANO_POD_XCOM_FILE") or XCOM_FILE)
    workdir = run / origin.name
    shutil.copytree(origin, workdir, symlinks=True, ignore=_plain)
    for name in ("report", "home", "tmp"):
        (run / name).mkdir(mode=0o700, exist_ok=True)
    started = time.time()
    for key in POD_CONTROL:
        env.pop(key, None)
    code = _runner().supervise(env, None, str(workdir))
    report = Path(env["MECCANO_REPORT_DIR"])
    legacy = workdir / "assets" / "output.png"  # the original's report plugins wrote their chart there
    if legacy.is_file() and not legacy.is_symlink() and legacy.stat().st_mtime >= started - 1 \
            and not (report / "output.png").exists():
        shutil.copyfile(legacy, report / "output.png")
    files, skipped = collect_report(report)
    if skipped:
        print(f"[meccano] left out of the report (not a regular file, or over {MAX_REPORT_BYTES} bytes): "
              f"{', '.join(skipped[:20])}", flush=True)
    xcom.parent.mkdir(parents=True, exist_ok=True)
    xcom.write_text(json.dumps({"exit_code": code, "files": files}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
