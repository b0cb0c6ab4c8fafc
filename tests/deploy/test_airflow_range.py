"""The package in an Airflow we did not build: the bottom of the range its metadata declares.

The wheel (built here from this checkout) names its direct needs as ranges (pyproject.toml). This test makes a
second virtualenv holding Airflow and every provider the wheel names at the LOWEST version it declares, resolved
by pip (not by requirements.txt), installs the wheel there and checks that pip changed no ``apache-airflow*``
version. Then, in that Airflow, one Python process follows the README's "Into an Airflow of your own" path:
``python -m meccano install-dags`` (the DAG file and the shipped plugins, from the wheel), ``airflow db migrate``,
``python -m meccano db upgrade`` / ``db check``; the DagBag of that DAGs folder has every shipped plugin and no
import error; a native and a python script plugin run through ``dag.test()`` on the SQLite IOTDB; Airflow's API
app serves the web view through the package's entry point.

Libraries Airflow itself requires (``AIRFLOW_OWN``) keep their declared range there, and their floors are
Airflow's own at the bottom of the range (asserted): the package never raises what the Airflow it joins needs.
Every other requirement is installed at its floor. ``HELD_AT_THE_LOCK`` are constraints at the lock's versions
(Airflow's releases are installed with constraints too): unconstrained, pip picks today's newest fastapi and
pydantic, with which Airflow 3.2.0's own API app fails to build, and it backtracks through every s3fs release over
botocore. The rest (starlette, cadwyn, common-sql, common-compat, ...) is resolved by pip.

The top of the range is today's lock (requirements.txt, the virtualenv the tests run in), checked to lie inside the
declared ranges below; the same checks run there in tests/plugins/test_dagbag.py (shipped plugins), test_engines_e2e.py
(native and script plugins through ``dag.test()``), test_plugin_entry_point.py (the web view through the entry
point), test_cli.py and test_migrations.py (``db upgrade`` / ``db check``), test_plugins_folder.py (install-dags).

The virtualenv is kept under ``.cache/`` keyed by the install it was made from (cold: a few minutes; warm: the
wheel and the checks only); a clean clone builds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"  # readable by the plugin user (scripts run as it with the virtualenv's interpreter)
AIRFLOW_OWN = {"alembic", "croniter", "fastapi", "jinja2", "jsonschema", "pydantic", "pyyaml", "sqlalchemy"}
# resolver hints: Airflow's own libraries at the lock's versions (inside Airflow 3.2.0's ranges), and the s3fs chain
HELD_AT_THE_LOCK = AIRFLOW_OWN | {"pydantic-core", "boto3", "botocore", "aiobotocore", "s3fs", "fsspec"}
BUILT_FROM = ("pyproject.toml", "setup.py", "include/meccano", "dags", "meccano_plugins")

pytestmark = pytest.mark.airflow_range


def _name(text: str) -> str:
    return text.lower().replace("_", "-")


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[_name(name)] = version.strip()
    return pins


def _declared() -> list[Requirement]:
    import tomllib

    return [Requirement(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]


def _floor(req: Requirement) -> str:
    floors = [s.version for s in req.specifier if s.operator == ">="]
    assert len(floors) == 1, f"{req}: declare one floor (>=) and an upper bound below the next major"
    return floors[0]


def test_every_requirement_is_a_range_from_a_floor_to_below_the_next_major_and_holds_the_lock():
    lock = _lock()
    for req in _declared():
        floor = Version(_floor(req))
        uppers = [Version(s.version) for s in req.specifier if s.operator == "<"]
        assert len(uppers) == 1 and uppers[0] > floor, f"{req}: an upper bound above the floor"
        major = uppers[0].release[0]
        assert uppers[0] == Version(str(major)), f"{req}: the upper bound is a next major (<N)"
        name = _name(req.name)
        assert name in lock, f"{req.name}: not in requirements.txt (the tested lock)"
        assert req.specifier.contains(lock[name]), f"the lock's {name}=={lock[name]} is outside {req}"
        assert Version(lock[name]).release[0] == major - 1, f"{req}: the upper bound is the lock's next major"
    names = {_name(r.name) for r in _declared()}
    assert {"apache-airflow-core", "apache-airflow-task-sdk", "apache-airflow-providers-amazon",
            "apache-airflow-providers-mysql", "apache-airflow-providers-standard"} <= names
    assert not any(n in names for n in ("apache-airflow", "apache-airflow-providers-celery",
                                        "apache-airflow-providers-fab")), "deployment choices, not needs"


def _run(argv: list[str], timeout: int = 900, **kwargs) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert done.returncode == 0, f"{argv[:4]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _build_wheel(out: Path) -> Path:
    """The wheel of this checkout, built from a copy (setuptools writes egg-info next to the sources)."""
    src = out / "src"
    for rel in BUILT_FROM:
        if (ROOT / rel).is_dir():
            shutil.copytree(ROOT / rel, src / rel, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out / "dist"), str(src)])
    return next((out / "dist").glob("meccano_servicemanager-*.whl"))


def _floor_install(wheel: Path) -> list[str]:
    """pip's arguments: Airflow (the meta package at the core's floor: the providers require it), each
    requirement at its floor, Airflow's own libraries in their declared range."""
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    reqs = [Requirement(line.split(":", 1)[1].strip()) for line in metadata.splitlines()
            if line.startswith("Requires-Dist:")]
    args = []
    for req in reqs:
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        args.append(f"{req.name}{extras}{req.specifier}" if _name(req.name) in AIRFLOW_OWN
                    else f"{req.name}{extras}=={_floor(req)}")
    core = next(r for r in reqs if _name(r.name) == "apache-airflow-core")
    return [f"apache-airflow=={_floor(core)}", *sorted(args)]


def _floor_venv(install: list[str]) -> Path:
    lock = _lock()
    hint = "".join(f"{n}=={lock[n]}\n" for n in sorted(HELD_AT_THE_LOCK) if n in lock)
    key = hashlib.sha256(json.dumps([install, hint, sys.version]).encode()).hexdigest()[:16]
    venv = CACHE / f"airflow-floor-{key}"
    if (venv / ".complete").is_file():
        return venv
    CACHE.mkdir(exist_ok=True)
    CACHE.chmod(0o755)
    # made in place (a virtualenv's scripts name its path) and marked complete last: an interrupted one is redone
    shutil.rmtree(venv, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(venv)])
    constraints = venv / "resolver-hint.txt"
    constraints.write_text(hint)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-c", str(constraints), *install],
         timeout=1800)
    (venv / ".complete").write_text("\n".join(install) + "\n")
    return venv


def _airflow_versions(python: Path) -> dict[str, str]:
    done = _run([str(python), "-m", "pip", "list", "--format", "json"])
    return {p["name"].lower(): p["version"] for p in json.loads(done.stdout) if p["name"].lower().startswith(
        "apache-airflow")}


# Runs in the floor Airflow, one process: the checks that need Airflow's metadata DB after `airflow db migrate`.
_CHECKS = r'''
import json, os, subprocess, sys
from pathlib import Path

def run(*argv):
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=600)
    return [done.returncode, done.stdout[-4000:], done.stderr[-4000:]]

home = Path(os.environ["AIRFLOW_HOME"])
result = {"install": run("-m", "meccano", "install-dags")}
result["migrate"] = run("-m", "airflow", "db", "migrate")
result["upgrade"] = run("-m", "meccano", "db", "upgrade")
result["check"] = run("-m", "meccano", "db", "check")

import meccano
from airflow.dag_processing.dagbag import DagBag
from meccano.plugins.discovery import discover, plugins_dir
result["meccano"] = meccano.__file__
result["plugins_dir"] = str(plugins_dir())
bag = DagBag(dag_folder=str(home / "dags"), bundle_path=home / "dags")
result["import_errors"] = {k: v[-1500:] for k, v in bag.import_errors.items()}
result["dag_ids"] = sorted(bag.dag_ids)
result["shipped"] = sorted(p.manifest.dag_id for p in discover().active)

from meccano.plugins.factory import build_dags
result["runs"] = {}
for dag_id in ("example_native", "example_python"):
    run_ = build_dags(only_dag_id=dag_id)[dag_id].test()
    result["runs"][dag_id] = str(run_.state)
from meccano.iotdb.db import Iotdb
from meccano.settings.config import load_settings
from sqlalchemy import text
db = Iotdb.from_settings(load_settings())
with db.engine.connect() as conn:
    result["example_rows"] = conn.execute(text("SELECT COUNT(*) FROM ExampleOutput")).scalar()

from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app, init_auth_manager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
client = TestClient(create_app())
token = init_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
auth = {"Authorization": "Bearer " + token}
for key, path in {"page": "/meccano/", "listing": "/meccano/plugins", "plugins": "/api/v2/plugins",
                  "plugin_errors": "/api/v2/plugins/importErrors"}.items():
    response = client.get(path, headers=auth)
    result[key] = [response.status_code, response.text[:20000]]
print("RESULT " + json.dumps(result))
'''


@pytest.fixture(scope="module")
def floor_airflow(tmp_path_factory) -> dict:
    """The wheel installed into the floor Airflow: (the virtualenv, pip's Airflow versions before and after)."""
    out = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(out)
    install = _floor_install(wheel)
    venv = _floor_venv(install)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "uninstall", "-q", "-y", "meccano-servicemanager"],
                   capture_output=True, timeout=300)
    before = _airflow_versions(python)
    _run([str(python), "-m", "pip", "install", "-q", str(wheel)])  # with its dependencies: pip may move any
    return {"python": python, "install": install, "before": before, "after": _airflow_versions(python)}


def test_the_wheel_installs_into_the_floor_airflow_without_moving_it(floor_airflow):
    install, before = floor_airflow["install"], floor_airflow["before"]
    assert before["apache-airflow-core"] == _floor(next(r for r in _declared() if r.name == "apache-airflow-core"))
    for req in _declared():
        if _name(req.name).startswith("apache-airflow"):
            assert before[_name(req.name)] == _floor(req), f"{req.name}: not at its floor in {before}"
    assert floor_airflow["after"] == before, "installing the wheel changed Airflow or a provider"
    assert any(arg.startswith("apache-airflow-providers-amazon[s3fs]==") for arg in install)


def test_our_floors_of_airflows_own_libraries_are_airflows(floor_airflow):
    """The libraries Airflow itself requires: our floor is the floor Airflow's lowest supported release asks."""
    done = _run([str(floor_airflow["python"]), "-c", "import importlib.metadata as m, json; print(json.dumps("
                 "m.requires('apache-airflow-core') + m.requires('apache-airflow-task-sdk')))"])
    theirs: dict[str, list[Version]] = {}  # the lowest version each of Airflow's requirements admits
    for text in json.loads(done.stdout):
        req = Requirement(text)
        for spec in req.specifier if req.marker is None else ():
            if spec.operator in (">=", ">"):
                low = (*Version(spec.version).release, 0, 0)
                bumped = (low[0], low[1], low[2] + 1) if spec.operator == ">" else low[:3]
                theirs.setdefault(_name(req.name), []).append(Version(".".join(map(str, bumped))))
    for req in _declared():
        if _name(req.name) in AIRFLOW_OWN:
            asked = theirs.get(_name(req.name))
            assert asked, f"{req.name}: Airflow's lowest release does not require it; test it at its floor"
            assert Version(_floor(req)) <= max(asked), f"{req}: a floor above Airflow's own ({max(asked)})"


def test_the_floor_airflow_runs_the_package(floor_airflow, tmp_path: Path):
    home = tmp_path / "airflow"
    home.mkdir()
    iotdb = Path(tempfile.mkdtemp(prefix="meccano-floor-iotdb-"))
    iotdb.chmod(0o755)  # scripts run as the plugin user
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MECCANO_", "_AIRFLOW", "PYTEST",
                                                                      "PYTHONPATH", "VIRTUAL_ENV"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
                "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
                "AIRFLOW__API_AUTH__JWT_SECRET": "floor-airflow-test-jwt-secret-" + "x" * 48,
                "MECCANO_IOTDB_SQLITE": str(iotdb / "iotdb.sqlite"), "MECCANO_CONFIG": os.devnull})
    try:
        done = _run([str(floor_airflow["python"]), "-c", _CHECKS], cwd=tmp_path, env=env)
    finally:
        shutil.rmtree(iotdb, ignore_errors=True)
    result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
    for step in ("install", "migrate", "upgrade", "check"):
        assert result[step][0] == 0, f"{step}:\n{result[step][1]}\n{result[step][2]}"
    assert "installed" in result["install"][1]
    assert "prerequisites: what plugin tasks need is there" in result["check"][1]
    # the installed wheel, not this checkout; the plugins where install-dags put them ($AIRFLOW_HOME/meccano_plugins)
    assert "/.cache/airflow-floor-" in result["meccano"], result["meccano"]
    assert result["plugins_dir"] == str(home / "meccano_plugins")
    assert result["import_errors"] == {}
    assert result["dag_ids"] == result["shipped"] and len(result["shipped"]) == len(
        [p for p in (ROOT / "meccano_plugins").iterdir() if p.is_dir()])
    assert result["runs"] == {"example_native": "success", "example_python": "success"}, result["runs"]
    assert result["example_rows"] == 0  # ran against the (empty) IOTDB: its output table exists, no device yet
    status, page = result["page"]
    assert status == 200 and "Meccano" in page
    status, listing = result["listing"]
    assert status == 200 and {"example_native:1.0", "example_python:1.0"} <= {r["folder"] for r in json.loads(listing)}
    plugins = [p["name"] for p in json.loads(result["plugins"][1])["plugins"]]
    assert plugins.count("meccano_web") == 1, plugins
    assert json.loads(result["plugin_errors"][1])["import_errors"] == []
