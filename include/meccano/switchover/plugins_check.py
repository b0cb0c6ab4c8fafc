"""The plugins part of ``migrate check``: every folder of the original ``plugins/``, judged by the
plugin contract (:mod:`meccano.contract.manifest`, :mod:`meccano.plugins.discovery`) and by what its
code needs on this host.

What is looked at, beyond the contract: the R packages an R plugin loads (``library(x)``,
``require(x)``, ``requireNamespace("x")``, checked with one ``Rscript`` call when R is here), the
modules a python plugin imports (in this Python, the one that runs scripts), whether a node.js
plugin is one of the original's in-process modules (``exports.entrypoint``, ``require('../mysql')``:
they run through :mod:`meccano.scripts.original_node`, once its npm packages are installed),
an ``executionContext`` of ``both``, and a schedule Airflow reads differently. Sources are read
bounded (:func:`meccano.files.bounded.read_bounded`: regular files only, never a link).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

from meccano.contract.manifest import Engine, ExecutionContext, PluginLoad, PluginManifest, display_name
from meccano.files.bounded import read_bounded
from meccano.plugins.discovery import Catalog, discover
from meccano.problems import Problem, Severity
from meccano.scripts.original_node import is_in_process_text, runner_problem
from meccano.switchover.report import PluginItem, change, check_once, needs_operator

MAX_SOURCE_BYTES = 2 * 1024 * 1024
_R_PACKAGE = re.compile(
    r"\b(?:library|require|requireNamespace)\s*\(\s*['\"]?([A-Za-z][A-Za-z0-9.]*)['\"]?\s*[,)]")
_NODE_REQUIRE = re.compile(r"require\(\s*['\"]([^'\"./][^'\"]*)['\"]\s*\)")
_R_INSTALL = "install it here (Debian: apt-get install r-cran-{lower}; else install.packages('{name}'))"


@functools.cache
def installed_r_packages() -> frozenset[str] | None:
    """The R packages installed here, None when R is not (one ``Rscript`` call per process)."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return None
    try:
        done = subprocess.run([rscript, "-e", "cat(rownames(installed.packages()), sep='\\n')"],
                              capture_output=True, text=True, timeout=120, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return frozenset(done.stdout.split())


@functools.cache
def node_builtins() -> frozenset[str] | None:
    node = shutil.which("node")
    if node is None:
        return None
    try:
        done = subprocess.run([node, "-e", "console.log(require('module').builtinModules.join('\\n'))"],
                              capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(done.stdout.split())


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def r_notes(source: str, filename: str) -> list[Problem]:
    wanted: dict[str, int] = {}
    for match in _R_PACKAGE.finditer(source):
        wanted.setdefault(match.group(1), _line_of(source, match.start()))
    installed = installed_r_packages()
    if installed is None:
        loads = f"; the plugin loads {', '.join(sorted(wanted))}" if wanted else ""
        return [needs_operator(filename, "R is not installed here (Rscript is not on PATH): install it (apt-get "
                               f"install r-base-core r-cran-dbi r-cran-rmysql){loads}")]
    return [needs_operator(filename, f"R package '{name}' (line {line}) is not installed here: "
                           + _R_INSTALL.format(lower=name.lower().replace(".", ""), name=name))
            for name, line in wanted.items() if name not in installed]


def _imports(tree: ast.Module) -> list[tuple[str, int]]:
    """Absolute imports outside ``try`` blocks (those usually guard an optional module)."""
    out: list[tuple[str, int]] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Try):
                continue
            if isinstance(child, ast.Import):
                out += [(alias.name.split(".")[0], child.lineno) for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                out.append((child.module.split(".")[0], child.lineno))
            stack.append(child)
    return sorted(set(out), key=lambda item: item[1])


def python_notes(source: str, filename: str) -> list[Problem]:
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as exc:
        return [change(filename, f"{filename} line {exc.lineno}: not valid Python 3 ({exc.msg}); port it to Python 3 "
                       "(scripts run with this installation's Python)")]
    except ValueError as exc:  # null bytes
        return [change(filename, f"{filename}: cannot be parsed ({exc})")]
    notes = []
    for module, line in _imports(tree):
        if importlib.util.find_spec(module) is None:
            notes.append(needs_operator(filename, f"imports '{module}' (line {line}), which is not installed in this "
                                        "Python: install it in the workers' environment"))
    return notes


def node_notes(source: str, folder: Path, filename: str) -> list[Problem]:
    builtins = node_builtins()
    if builtins is None:
        return [needs_operator(filename, "Node.js is not installed here (node is not on PATH): install it "
                               "(apt-get install nodejs)")]
    notes = []
    if is_in_process_text(source):
        problem = runner_problem()
        notes.append(needs_operator(filename, f"an in-process node.js plugin of the original (exports.entrypoint): "
                                    f"{problem}")
                     if problem else
                     check_once(filename, "an in-process node.js plugin of the original (exports.entrypoint): it "
                                "runs through the shipped runner, which provides ../config, ../mysql and ../aws; check "
                                "that it uses them as docs/plugins.md, \"Original node.js plugins\" describes"))
    for match in _NODE_REQUIRE.finditer(source):
        name = match.group(1)
        base = name.removeprefix("node:").split("/")[0]
        if name.startswith("node:") or base in builtins or (folder / "node_modules" / name).is_dir():
            continue
        notes.append(needs_operator(filename, f"requires the npm module '{name}' (line "
                                    f"{_line_of(source, match.start())}), not in the plugin's node_modules/: install "
                                    "it there (npm install, then copy the folder again)"))
    return notes


def schedule_notes(manifest: PluginManifest) -> list[Problem]:
    notes = []
    fields = manifest.schedule.split()
    if len(fields) == 5 and fields[2] not in ("*", "?") and fields[4] not in ("*", "?"):
        notes.append(check_once("schedule", f"schedule {manifest.schedule!r} restricts both the day of the month "
                                "and the day of the week: Airflow (croniter, as Vixie cron) runs it on days matching "
                                "EITHER one, while node-cron (the usual Node.js scheduler) requires both; check the "
                                "days it should run"))
    if manifest.execution_context == ExecutionContext.BOTH:
        notes.append(check_once("executionContext", "executionContext 'both' ran it on both instances; now it runs "
                                "once per schedule and its report reaches every web server through the report store: "
                                "check that it does not rely on running on every host"))
    return notes


def _source(manifest: PluginManifest) -> tuple[str | None, Problem | None]:
    try:
        return read_bounded(manifest.source, MAX_SOURCE_BYTES).decode("utf-8", "replace"), None
    except OSError as exc:
        return None, change(manifest.source.name, f"{manifest.source.name}: cannot be read ({exc})")


def engine_notes(manifest: PluginManifest) -> list[Problem]:
    source, problem = _source(manifest)
    if source is None:
        return [problem] if problem else []
    if manifest.engine == Engine.R:
        return r_notes(source, manifest.source.name)
    if manifest.engine in (Engine.PYTHON, Engine.NATIVE):
        return python_notes(source, manifest.source.name)
    return node_notes(source, manifest.folder, manifest.source.name)  # Engine.NODEJS, the last engine


_SECONDS_HINT = ("; the original's node scheduler also read a leading seconds field: drop it "
                 "(Airflow's schedules have 5 fields)")


def _invalid_item(load: PluginLoad) -> PluginItem:
    raw = load.raw or {}
    engine = raw.get("engine") if isinstance(raw.get("engine"), str) else "?"
    notes = []
    for problem in load.problems:
        text = f"{problem.where}: {problem.message}"
        if "has 6 fields" in problem.message:
            text += _SECONDS_HINT
        notes.append(change(problem.where, f"{text} (in {display_name(load.folder)}/plugin.json)"))
    return PluginItem(display_name(load.folder), str(engine)[:20], "change", notes)


def _valid_item(load: PluginLoad) -> PluginItem:
    manifest = load.manifest
    assert manifest is not None
    notes = engine_notes(manifest) + schedule_notes(manifest)
    if not manifest.enabled:
        notes.append(check_once("enabled", "disabled (enabled: false): its DAG is paused and unscheduled; trigger "
                                "it by hand"))
    status = "change" if any(n.severity == Severity.ERROR for n in notes) else "warning" if notes else "unchanged"
    return PluginItem(display_name(load.folder), manifest.engine, status, notes)


def plugin_items(root: Path) -> tuple[list[PluginItem], Catalog]:
    """One item per folder of ``root`` (the original's ``plugins/``), in folder order."""
    catalog = discover(root)
    items: dict[str, PluginItem] = {}
    for load in catalog.active:
        items[load.folder.name] = _valid_item(load)
    losers: dict[str, list[str]] = {}
    for shadowed in catalog.shadowed:
        item = _valid_item(shadowed.load)
        item.version = f"shadowed: {shadowed.by} wins"
        items[shadowed.load.folder.name] = item
        losers.setdefault(shadowed.by, []).append(shadowed.load.folder.name)
    for winner, names in losers.items():
        if winner in items:
            items[winner].version = f"wins over {', '.join(sorted(names))}"
    for load in catalog.invalid:
        items[load.folder.name] = _invalid_item(load)
    return [items[name] for name in sorted(items)], catalog
