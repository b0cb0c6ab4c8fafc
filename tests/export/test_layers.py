"""The export's rooms stay as docs/export.md draws them: no import cycle, every name imported from the
module that defines it, only Airflow's public interfaces, bounded complexity."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXPORT = ROOT / "include" / "meccano" / "export"
PACKAGE = "meccano.export"


def _modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text(), str(p)) for p in sorted(EXPORT.glob("*.py")) if p.stem != "__init__"}


def _imports(tree: ast.Module) -> list[ast.ImportFrom | ast.Import]:
    """Every import of the module, at the top or inside functions (lazy ones count too)."""
    return [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]


def _export_deps(tree: ast.Module) -> set[str]:
    deps = set()
    for node in _imports(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith(PACKAGE + "."):
                deps.add(node.module.split(".")[2])
            elif node.module == PACKAGE:
                deps.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            deps.update(a.name.split(".")[2] for a in node.names if a.name.startswith(PACKAGE + "."))
    return deps


def _defined(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_no_import_cycle_between_the_export_modules():
    graph = {name: _export_deps(tree) - {name} for name, tree in _modules().items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            assert state.get(dep) != 1, "import cycle: " + " -> ".join([*path, node, dep])
            if dep not in state:
                visit(dep, [*path, node])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [])


# from the bottom up: a module imports only modules of the layers below its own
LAYERS = [
    {"model"},
    {"options", "stream", "partfile", "location", "memory"},
    {"csvformat"},
    {"parquetformat", "snapshot", "s3objects"},
    {"formats", "ledger", "target"},
    {"context", "assets"},
    {"plan", "write", "reconcile", "verify", "purge"},
    {"chain"},
]


def test_the_walk_moves_forward_lower_layers_never_import_higher_ones():
    modules = _modules()
    layer = {name: i for i, names in enumerate(LAYERS) for name in names}
    assert set(layer) == set(modules), "every export module has its layer"
    upward = [f"{name} -> {dep}" for name, tree in modules.items()
              for dep in _export_deps(tree) - {name} if layer[dep] >= layer[name]]
    assert upward == []


def test_every_name_is_imported_from_the_module_that_defines_it():
    modules = _modules()
    defined = {name: _defined(tree) for name, tree in modules.items()}
    wrong = []
    for name, tree in modules.items():
        for node in _imports(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE + "."):
                source = node.module.split(".")[2]
                wrong += [f"{name}: {a.name} from {source}" for a in node.names if a.name not in defined[source]]
    assert wrong == []


def test_only_public_airflow_interfaces():
    private = []
    for name, tree in _modules().items():
        for node in _imports(tree):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            names = [a.name for a in node.names] if isinstance(node, ast.ImportFrom) else []
            for module in modules:
                if module.startswith("airflow") and (any(part.startswith("_") for part in module.split("."))
                                                     or module.startswith("airflow.sdk.io.store")
                                                     or any(n.startswith("_") for n in names)):
                    private.append(f"{name}: {module}")
    assert private == []
    assert "_STORE_CACHE" not in "".join(p.read_text() for p in EXPORT.glob("*.py"))


def test_the_records_between_rooms_round_trip_through_their_json():
    """A manifest travels as JSON (ledger, target) and comes back the same; the target's copy has no chunks."""
    from meccano.export import model

    manifest = model.Manifest("Facts", "2024-03-01", "creationDate", "facts", "r", {"format": "csv"}, [],
                              [model.Part("part-00000.csv.gz", 2, 10, "ab" * 32, 30)],
                              [model.Chunk("2024-03-01 00:00:00", "2024-03-02 00:00:00", 2)])
    assert model.Manifest.from_json(manifest.to_json()) == manifest
    assert "chunks" not in manifest.public_json() and manifest.public_json()["rows"] == 2


def test_export_functions_stay_under_ruff_s_complexity_limit():
    plugin = ROOT / "meccano_plugins" / "s3_export:1.0"
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "C901", "--config",
                           "lint.mccabe.max-complexity=12", str(EXPORT), str(plugin)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout


def test_manifests_already_written_read_back_unchanged():
    """A ledger or target manifest of an earlier version (no uncompressedBytes, no format) round-trips to the
    same JSON, so verify's comparison with the uploaded manifest.json still holds for old days."""
    from meccano.export.model import Manifest

    old = {"table": "Facts", "day": "2024-03-01", "dateColumn": "creationDate", "prefix": "facts", "runId": "r0",
           "writtenAt": "2024-03-02T02:00:00+00:00", "schema": [{"name": "data", "type": "INTEGER"}], "rows": 3,
           "bytes": 40, "minDate": "2024-03-01 00:00:01", "maxDate": "2024-03-01 23:59:59",
           "parts": [{"key": "part-00000.csv.gz", "rows": 3, "bytes": 40, "sha256": "0" * 64}],
           "chunks": [{"from": "2024-03-01 00:00:00", "to": "2024-03-02 00:00:00", "rows": 3, "purged": True}]}
    manifest = Manifest.from_json(old)
    assert manifest.to_json() == old and manifest.file_format == "csv" and manifest.chunks[0].purged


def test_the_enums_keep_the_stored_values():
    """Modes, formats and ledger states are stored as the texts the earlier versions wrote (XCom, ledger rows,
    manifests), and read back from them."""
    import json

    from meccano.export.ledger import LedgerState
    from meccano.export.model import FileFormat, Mode, TableDay

    assert [m.value for m in Mode] == ["full", "reconcile"] and [f.value for f in FileFormat] == ["csv", "parquet"]
    assert [s.value for s in LedgerState] == ["exported", "uploaded", "verified", "purging", "purged"]
    planned = {"table": "Facts", "date_column": "creationDate", "prefix": "facts", "day": "2024-03-01",
               "start": "2024-03-01 00:00:00", "end": "2024-03-02 00:00:00", "mode": "reconcile"}
    day = TableDay.from_json(planned)
    assert day.mode is Mode.RECONCILE and json.loads(json.dumps(day.to_json())) == planned
