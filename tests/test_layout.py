"""The package's tree is its architecture: rooms by role, no import cycle between modules, one error family,
and the README's architecture table naming every room."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "include" / "meccano"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT / "include").with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _trees() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text(), str(p)) for p in sorted(PACKAGE.rglob("*.py"))}


def _dependencies(name: str, tree: ast.Module, modules: set[str]) -> set[str]:
    """The project modules ``name`` imports, lazily inside functions too (a cycle there is one all the same)."""
    deps: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("meccano"):
            for alias in node.names:  # ``from meccano.export import chain`` names a module
                deps.add(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module)
        elif isinstance(node, ast.Import):
            deps.update(a.name for a in node.names if a.name.startswith("meccano"))
    parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    return {d for d in deps if d in modules and d != name and d not in parents}


def test_no_import_cycle_anywhere_in_the_package():
    trees = _trees()
    graph = {name: _dependencies(name, tree, set(trees)) for name, tree in trees.items()}
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(" -> ".join([*path[path.index(dep):], dep]) if dep in path else f"{node} -> {dep}")
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


# The floors of the house, lowest first; a room imports only from its own floor or below. Written down once here
# and in the README's Architecture section.
FLOORS = ("errors", "files", "secrets", "problems", "settings", "iotdb", "fleet", "contract", "reports", "export",
          "scripts", "plugins", "web", "switchover", "cli")


def _room(module: str) -> str:
    return module.split(".")[1] if module.count(".") >= 1 else module


def _room_imports(trees: dict[str, ast.Module]) -> list[tuple[str, str, int, str]]:
    """(importing module, imported room, line, imported module) for every import of another room, lazy or not."""
    found = []
    for name, tree in trees.items():
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("meccano."):
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("meccano.")]
            for target in targets:
                if _room(target) != _room(name):
                    found.append((name, _room(target), node.lineno, target))
    return found


def test_every_room_is_on_a_floor():
    rooms = {p.parent.name for p in PACKAGE.glob("*/__init__.py")} | {p.stem for p in PACKAGE.glob("*.py")}
    assert rooms - {"__init__", "__main__"} == set(FLOORS)


def test_imports_point_down_the_floors():
    """No import, at the top of a module or inside a function, runs from a lower floor to a higher one."""
    rank = {room: i for i, room in enumerate(FLOORS)}
    upward = [f"{module}:{line} imports {target} ({_room(module)} is below {room})"
              for module, room, line, target in _room_imports(_trees())
              if _room(module) in rank and rank[room] > rank[_room(module)]]
    assert upward == []


def test_no_two_rooms_import_each_other():
    pairs = {(_room(module), room) for module, room, _, _ in _room_imports(_trees())}
    assert sorted(p for p in pairs if (p[1], p[0]) in pairs) == []


def test_the_floor_test_sees_a_lazy_back_arrow():
    """The check reads imports inside functions too: a lazy import of the factory from the IOTDB is caught."""
    tree = ast.parse("def f():\n    from meccano.plugins.factory import build_dags\n")
    found = _room_imports({"meccano.iotdb.x": tree})
    assert found == [("meccano.iotdb.x", "plugins", 2, "meccano.plugins.factory")]


def _exception_classes(trees: dict[str, ast.Module]) -> dict[str, tuple[str, list[str]]]:
    found = {}
    for module, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b) for b in node.bases]
                if node.name.endswith(("Error", "Stopped", "Exception")) or any(
                        re.search(r"(Error|Exception)$", b) for b in bases):
                    found[node.name] = (module, bases)
    return found


def test_every_project_error_is_one_family_in_one_module():
    classes = _exception_classes(_trees())
    assert {module for module, _ in classes.values()} == {"meccano.errors"}, classes
    import meccano.errors as errors

    members = [getattr(errors, name) for name in classes]
    assert all(issubclass(cls, errors.MeccanoError) for cls in members)
    for cls in members:
        assert cls.__doc__ and len(cls.__doc__) > 20, f"{cls.__name__}: say what it means and what fixes it"


def test_readme_architecture_table_names_every_room():
    """Every sub-package of ``include/meccano`` is a row of the README's architecture table, and every
    ``include/meccano/<room>/`` the table names exists."""
    rooms = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`include/meccano/(\w+)/`", section))
    assert named == rooms


def _unmarked_lazy_imports(path: Path, text: str) -> list[str]:
    lines = text.splitlines()
    found = []

    def walk(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if in_function and isinstance(child, (ast.Import, ast.ImportFrom)):
                here, above = lines[child.lineno - 1], lines[child.lineno - 2] if child.lineno > 1 else ""
                if "# lazy:" not in here and not above.strip().startswith("# lazy:"):
                    found.append(f"{path.relative_to(ROOT)}:{child.lineno}: {here.strip()}")
            walk(child, inside)

    walk(ast.parse(text, str(path)), False)
    return found


def test_every_import_inside_a_function_says_what_it_saves():
    """An import inside a function is there because importing it costs: the figure stands beside it
    (``# lazy: pyarrow costs 45 ms at import (python -X importtime)``), else it belongs at the top of the module."""
    unmarked = [line for p in sorted(PACKAGE.rglob("*.py")) if "node_modules" not in p.parts
                for line in _unmarked_lazy_imports(p, p.read_text())]
    assert unmarked == []


def test_the_lazy_import_check_sees_an_unmarked_one():
    text = "def f():\n    import json\n\n\ndef g():\n    import yaml  # lazy: yaml costs 9 ms at import\n"
    assert _unmarked_lazy_imports(PACKAGE / "x.py", text) == ["include/meccano/x.py:2: import json"]


MAX_PARAMETERS = 6  # issue 37: a longer list is a context or a small record waiting to be named


def test_no_function_takes_more_than_six_parameters():
    """``self``/``cls`` aside, and ``*args``/``**kwargs`` counted as one each."""
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                every = (*args.posonlyargs, *args.args, *args.kwonlyargs)
                names = [a.arg for a in every if a.arg not in ("self", "cls")]
                count = len(names) + (args.vararg is not None) + (args.kwarg is not None)
                if count > MAX_PARAMETERS:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({count})")
    assert long == []
