"""Shared fixtures: an isolated Airflow home, and the real services on 127.0.0.1.

Services start on first use (session scope) and stop when the session ends, so a run
of the unit tests alone starts nothing.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
_HOME = Path(tempfile.mkdtemp(prefix="meccano-test-airflow-"))
os.environ.update({
    "AIRFLOW_HOME": str(_HOME),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),  # the web view: the package's entry point
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME / 'airflow.db'}",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
})
for var in ("MECCANO_ENV", "NODE_ENV", "MECCANO_CONFIG", "CONFIG_FILE"):
    os.environ.pop(var, None)

from tests.services.mariadb import MariaDB  # noqa: E402


@pytest.fixture(scope="session")
def service_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="meccano-services-"))
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Airflow's SQLite metadata DB, migrated once per session (for ``dag.test()``)."""
    from airflow.utils import db

    db.resetdb()


@pytest.fixture
def airflow_pool(airflow_db: None) -> None:
    """The ``iotdb`` pool in the session's metadata DB, as every set-up path makes it (``db check`` and
    ``config show`` exit 1 without it)."""
    from meccano.settings.config import load_settings
    from meccano.settings.pool import sync_pool

    sync_pool(load_settings())


_counter = iter(range(10_000))


@pytest.fixture
def iotdb_env(mariadb: MariaDB, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A fresh IOTDB database in MariaDB with the full schema, exposed the Airflow way
    (``AIRFLOW_CONN_MECCANO_IOTDB``). Yields the environment it set."""
    name = f"IOTDB_{os.getpid()}_{next(_counter)}"
    mariadb.create_database(name)
    env = {"AIRFLOW_CONN_MECCANO_IOTDB": mariadb.uri(name)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from meccano.iotdb.db import Iotdb
    from meccano.iotdb.schema import ensure_schema
    from meccano.settings.config import load_settings

    db = Iotdb.from_settings(load_settings())
    ensure_schema(db)
    db.dispose()
    yield env
    mariadb.sql(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def iotdb(iotdb_env: dict[str, str]):
    """An :class:`meccano.iotdb.db.Iotdb` on a fresh MariaDB database with the schema."""
    from meccano.iotdb.db import Iotdb
    from meccano.settings.config import load_settings

    db = Iotdb.from_settings(load_settings())
    yield db
    db.dispose()


@pytest.fixture
def sqlite_iotdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The embedded SQLite IOTDB (the demo's default) with the schema."""
    from meccano.iotdb.db import Iotdb
    from meccano.iotdb.schema import ensure_schema
    from meccano.settings.config import load_settings

    # a folder of its own that the plugin user can reach (scripts run as it), like the demo's
    folder = Path(tempfile.mkdtemp(prefix="meccano-test-iotdb-"))
    folder.chmod(0o755)
    monkeypatch.delenv("AIRFLOW_CONN_MECCANO_IOTDB", raising=False)
    monkeypatch.setenv("MECCANO_IOTDB_SQLITE", str(folder / "iotdb.sqlite"))
    db = Iotdb.from_settings(load_settings())
    ensure_schema(db)
    yield db
    db.dispose()
    shutil.rmtree(folder, ignore_errors=True)


def _service(name: str, starter: str, doc: str) -> Any:
    """A session fixture ``name`` that starts a real service with ``starter`` ("module:function", called with
    its own folder under ``service_dir``) on first use and stops it when the session ends."""

    @pytest.fixture(scope="session", name=name)
    def fixture(service_dir: Path) -> Iterator[Any]:
        module, function = starter.split(":")
        server = getattr(importlib.import_module(module), function)(service_dir / name)
        yield server
        server.stop()

    fixture.__doc__ = doc
    return fixture


mariadb = _service("mariadb", "tests.services.mariadb:start_mariadb", "MariaDB, the MySQL IOTDB.")
s3_server = _service("s3_server", "tests.services.s3:start_s3", "SeaweedFS, the S3-compatible export target.")
sns_server = _service("sns_server", "tests.services.sns:start_sns", "moto's SNS (no real SNS runs here).")
postgres = _service("postgres", "tests.services.postgres:start_postgres", "PostgreSQL, Airflow's metadata in HA tests.")
redis_server = _service("redis_server", "tests.services.redis:start_redis",
                        "Redis (Debian's redis-server), the Celery broker of the distributed tests.")


@pytest.fixture
def plugin_shared() -> Iterator[Path]:
    """A folder a script plugin may read and write (scripts run as the plugin user, which cannot enter the
    worker's own temporary folders such as ``tmp_path``): mode 0777 under the system's temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="meccano-test-shared-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def run_plugin_dag(airflow_db, monkeypatch: pytest.MonkeyPatch):
    """Run a plugin's DAG with ``dag.test()``: ``run_plugin_dag(dag_id, root=None, conf=None)``.

    ``dag.test()`` re-parses the configured dags folder to serialize the DAG, so a plugin
    from another folder must be announced through ``MECCANO_PLUGINS_DIR`` first.
    """
    from meccano.plugins.factory import build_dags

    def run(dag_id: str, root: Path | None = None, conf: dict | None = None):
        if root is not None:
            monkeypatch.setenv("MECCANO_PLUGINS_DIR", str(root))
        dag = build_dags(root, only_dag_id=dag_id)[dag_id]
        return dag.test(run_conf=conf) if conf is not None else dag.test()

    return run


_BUILD: list = []  # the BackgroundBuild of this process, if it runs a test that needs Docker
# Under xdist, the long single-test modules that start a whole Airflow of their own: the HA failover goes out right
# after the compose stack's unit (beside it, it took as long as alone), the demo last (beside the stack it took 3.5x as
# long: 316 s against 95 s after it). The second Airflow of tests/test_airflow_range.py goes early too (its cold
# virtualenv takes minutes).
_FIRST_UNDER_XDIST = ("ha", "airflow_range")
_LAST_UNDER_XDIST = ("demo",)


def _needs_docker(items: list[pytest.Item]) -> list[pytest.Item]:
    return [item for item in items if "docker" in getattr(item, "fixturenames", ())]


DOCKER_MODULES = ("tests/test_compose_up.py", "tests/test_packaging.py")  # every test that needs the image


def _module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``make test`` runs on xdist workers (``-n 2``): each module is one unit of work, so its fixtures start
    once, and the modules that need Docker are one unit together, so one worker builds the image and runs the
    one compose stack. Units go out in collection order (``--no-loadscope-reorder``), which
    ``pytest_collection_modifyitems`` sets."""
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = _module_of(nodeid)
            return "docker" if module in DOCKER_MODULES else module

    return ByModule(config, log)


@pytest.hookimpl(trylast=True)  # after -m / -k deselected what will not run
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the run around the image build, the longest step.

    Alone (``pytest``): if a collected test needs the images, start the engine and the builds now, in the
    background, and run those tests last, so the build overlaps everything else.

    Under xdist (``make test``: ``-n 2``, units of work by ``pytest_xdist_make_scheduler``): the tests that need
    Docker come first, then the HA module, the demo last, the rest between as collected. The worker that takes the
    Docker unit builds when its first test asks (the ``docker`` fixture) while the other works through the rest.
    """
    needs = _needs_docker(items)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        stray = [item.nodeid for item in needs if _module_of(item.nodeid) not in DOCKER_MODULES]
        if stray:
            raise pytest.UsageError(f"{stray[0]} needs Docker: add its module to DOCKER_MODULES in tests/conftest.py, "
                                    "so that one worker runs every test that needs the image")
        def marked(marks: tuple[str, ...]) -> list[pytest.Item]:
            return [item for item in items if item not in needs and any(item.get_closest_marker(m) for m in marks)]

        first, last = marked(_FIRST_UNDER_XDIST), marked(_LAST_UNDER_XDIST)
        items[:] = needs + first + [item for item in items if item not in {*needs, *first, *last}] + last
        return
    items[:] = [item for item in items if item not in needs] + needs
    if config.option.collectonly or not needs:
        return
    _BUILD.append(_start_build())


def _start_build() -> Any:
    from tests.services.docker_engine import BackgroundBuild

    return BackgroundBuild(Path(tempfile.mkdtemp(prefix="meccano-docker-")))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for build in _BUILD:
        build.stop()  # the engine and everything it ran; nothing listens after the session


@pytest.fixture(scope="session")
def docker():
    """A Docker engine of the tests' own with the project's image (docker/Dockerfile) and the backing
    services' local images built (tests/services/docker_engine.py); stopped at the end of the session."""
    if not _BUILD:  # under xdist the build starts with the first test that needs it
        _BUILD.append(_start_build())
    return _BUILD[0].result()
