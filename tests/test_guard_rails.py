"""The guard rails stay on: ``make test`` lints (with the complexity limit) and type-checks
before pytest, and every ``test_*.py`` module holds tests (helpers live in ``tests/support/``)."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _recipe(target: str) -> list[str]:
    """The command lines of a Makefile target, in order."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"{target}:", line))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_make_test_lints_and_type_checks_before_pytest():
    recipe = _recipe("test")
    pytest_at = next(i for i, line in enumerate(recipe) if "pytest" in line)
    assert any("ruff check" in line for line in recipe[:pytest_at]), recipe
    assert any("typecheck" in line for line in recipe[:pytest_at]), recipe
    assert any(line.startswith(".venv/bin/mypy") for line in _recipe("typecheck"))


def test_complexity_limit_and_mypy_strictness_are_configured():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lint = config["tool"]["ruff"]["lint"]
    assert "C90" in lint["select"] and lint["mccabe"]["max-complexity"] <= 12
    mypy = config["tool"]["mypy"]
    # include/ only: the Meccano Airflow plugin is in the package (meccano.web.airflow_plugin), and plugins/
    # holds no Python of the project (tests/web/test_plugin_entry_point.py)
    assert set(mypy["files"]) == {"include"}
    for flag in ("disallow_untyped_defs", "check_untyped_defs", "no_implicit_optional", "warn_unused_ignores"):
        assert mypy[flag] is True, flag
    assert not mypy.get("ignore_missing_imports"), "exempt untyped libraries by name in [[tool.mypy.overrides]]"


def _is_test(node: ast.stmt) -> bool:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return node.name.startswith("test")
    return isinstance(node, ast.ClassDef) and node.name.startswith("Test")


def test_every_test_module_holds_tests():
    empty = [str(path.relative_to(ROOT)) for path in sorted(ROOT.glob("tests/**/test_*.py"))
             if not any(_is_test(node) for node in ast.parse(path.read_text()).body)]
    assert not empty, f"modules named test_*.py without tests (move helpers to tests/support/): {empty}"


# Airflow's public interface as this project uses it (airflow.sdk and the two sub-modules its reference
# documents, the providers, the plugin interface). web/airflow_internal.py is the one place allowed more:
# tests/web/test_airflow_internal_contract.py pins what it uses.
PUBLIC_AIRFLOW = ("airflow.sdk", "airflow.sdk.exceptions", "airflow.sdk.log", "airflow.plugins_manager")
INTERNAL_ALLOWED = {"include/meccano/web/airflow_internal.py"}


def test_only_public_airflow_interfaces_are_imported():
    offenders = []
    for path in sorted([*ROOT.glob("include/meccano/**/*.py"), *ROOT.glob("plugins/*.py"), *ROOT.glob("dags/*.py")]):
        rel = str(path.relative_to(ROOT))
        if rel in INTERNAL_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if (name == "airflow" or name.startswith("airflow.")) and not (
                        name in PUBLIC_AIRFLOW or name.startswith("airflow.providers.")):
                    offenders.append(f"{rel}:{node.lineno}: {name}")
    assert not offenders, "private Airflow modules imported:\n" + "\n".join(offenders)
