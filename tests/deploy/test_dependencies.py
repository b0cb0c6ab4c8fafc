"""The pinned closure is installable as it stands: no pin at a release its authors yanked (pip would still install
it, with a warning nobody reads), ``pip check`` clean in the venv, and ``make demo`` installing the runtime list only.

The yanked flags come from pip's own view of the index (``pip install --dry-run --report``: ``is_yanked`` of each
candidate it would install), the same index and certificates the venv was installed from; the index must answer
(the test fails, never skips, when it does not). The image's ``pip check``: tests/deploy/test_compose_up.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _pins(path: Path) -> set[str]:
    out = set()
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==(\S+)", line.strip())
        if m:
            out.add(f"{re.sub(r'[-_.]+', '-', m.group(1)).lower()}=={m.group(3)}")
    return out


@pytest.mark.parametrize("lock", ["requirements.txt", "requirements-dev.txt"])
def test_no_pin_is_a_yanked_release(lock: str, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps", "--quiet",
         "--disable-pip-version-check", "--report", str(report), "-r", str(ROOT / lock)],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, f"pip could not resolve {lock} against the index: {done.stderr[-2000:]}"
    items = json.loads(report.read_text())["install"]
    found = {f"{re.sub(r'[-_.]+', '-', i['metadata']['name']).lower()}=={i['metadata']['version']}" for i in items}
    own = _pins(ROOT / lock) - (_pins(ROOT / "requirements.txt") if lock != "requirements.txt" else set())
    assert own <= found, f"pins pip did not report: {sorted(own - found)}"
    yanked = sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in items if i.get("is_yanked"))
    assert yanked == [], f"{lock} pins yanked releases: {yanked}; pin a release that is not yanked"


def test_pip_check_passes_in_the_venv() -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "check", "--disable-pip-version-check"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def _fake_venv_run(tmp_path: Path, mode: str) -> list[str]:
    """scripts/install-venv.sh MODE in a copy of the project whose .venv/bin/python only records its arguments:
    the ``pip install -r`` commands the script runs."""
    project = tmp_path / "project"
    if not project.exists():
        (project / "scripts").mkdir(parents=True)
        (project / "include" / "meccano").mkdir(parents=True)
        for name in ("scripts/install-venv.sh", "requirements.txt", "requirements-dev.txt", "pyproject.toml"):
            (project / name).write_bytes((ROOT / name).read_bytes())
        (project / "scripts/install-venv.sh").chmod(0o755)
        python = project / ".venv" / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.write_text('#!/bin/sh\necho "$*" >> "$(dirname "$0")/../calls.log"\n')
        python.chmod(0o755)
    log = project / ".venv" / "calls.log"
    log.unlink(missing_ok=True)
    done = subprocess.run([str(project / "scripts/install-venv.sh"), mode], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHON": "false"})
    assert done.returncode == 0, done.stderr
    return [line for line in log.read_text().splitlines() if "pip install" in line and " -r " in line]


def test_make_demo_installs_the_runtime_list_only(tmp_path: Path) -> None:
    makefile = (ROOT / "Makefile").read_text()
    demo = re.search(r"^demo:([^\n#]*)", makefile, re.M)
    assert demo and "venv-demo" in demo.group(1).split() and "venv" not in demo.group(1).split()
    assert re.search(r"^venv-demo:.*\n\tscripts/install-venv\.sh demo\n", makefile, re.M)
    demo_calls = _fake_venv_run(tmp_path, "demo")
    assert "-m pip install -q -r requirements.txt" in demo_calls
    assert not any("requirements-dev.txt" in c for c in demo_calls), demo_calls
    test_calls = _fake_venv_run(tmp_path, "test")  # the same venv gets the tools for `make test`
    assert "-m pip install -q -r requirements-dev.txt" in test_calls
    assert _fake_venv_run(tmp_path, "demo") == []  # a test venv serves the demo as it is
    assert _fake_venv_run(tmp_path, "test") == []  # and itself, until a list changes
