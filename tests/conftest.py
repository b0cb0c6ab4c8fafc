"""Shared fixtures: an isolated Airflow home, and the real services on 127.0.0.1.

Services start on first use (session scope) and stop when the session ends, so a run
of the unit tests alone starts nothing.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services.mariadb import MariaDB
from tests.support.fleet import SNS_SECRET
from tests.support.web import OUTSIDE, SECRETS

ROOT = Path(__file__).resolve().parents[1]
pytest_plugins = ("tests.support.scheduling",)  # the order of the run around the image build, the xdist units


def pytest_configure(config: pytest.Config) -> None:
    """An isolated Airflow home for the whole session, set before any test module (and so Airflow) is imported;
    nothing is changed in the environment when this file is imported."""
    home = Path(tempfile.mkdtemp(prefix="meccano-test-airflow-"))
    os.environ.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),  # the web view: the package's entry point
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    })
    for var in ("MECCANO_ENV", "NODE_ENV", "MECCANO_CONFIG", "CONFIG_FILE"):
        os.environ.pop(var, None)




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


@pytest.fixture
def plugins_root(tmp_path, monkeypatch) -> Path:
    """Two real report plugins, a shadowed lower version, and two invalid plugins."""
    root = tmp_path / "plugins"
    root.mkdir()
    for name in ("updatesByDevice:1.0", "deviceAvgTime:1.0"):
        shutil.copytree(ROOT / "meccano_plugins" / name, root / name)
    old = root / "updatesByDevice:0.9"
    shutil.copytree(ROOT / "meccano_plugins" / "updatesByDevice:1.0", old)
    (old / "updatesByDevice:1.0.py").rename(old / "updatesByDevice:0.9.py")
    raw = json.loads((old / "plugin.json").read_text())
    (old / "plugin.json").write_text(json.dumps({**raw, "plugin": "updatesByDevice:0.9"}))
    bad = root / "broken:1.0"
    bad.mkdir()
    (bad / "plugin.json").write_text(json.dumps({
        "plugin": "broken:1.0", "engine": "cobol", "enabled": "yes", "schedule": "every day",
        "description": "a broken plugin", "type": "report", "executionContext": "master"}))
    (root / "garbled:1.0").mkdir()
    (root / "garbled:1.0" / "plugin.json").write_text("{not json")
    (tmp_path / "secret.txt").write_text(OUTSIDE)
    (root / "updatesByDevice:1.0" / "assets" / "leak.txt").symlink_to(tmp_path / "secret.txt")
    monkeypatch.setenv("MECCANO_PLUGINS_DIR", str(root))
    monkeypatch.setenv("MECCANO_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("MYSQL_PASSWORD", SECRETS[0])
    monkeypatch.setenv("AWS_SECRETACCESSKEY", SECRETS[1])
    monkeypatch.setenv("MECCANO_WEB_CONSOLE_TOKEN", SECRETS[2])
    monkeypatch.setenv("AIRFLOW_CONN_MECCANO_IOTDB", f"mysql://u:{SECRETS[3]}@127.0.0.1:1/IOTDB")
    return root


@pytest.fixture
def sns(sns_server, monkeypatch):
    """A fresh topic + queue; the settings point at them through the original variables."""
    sns_server.reset()
    topic, queue = sns_server.topic_with_queue("meccano-alerts")
    monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT", raising=False)
    monkeypatch.setenv("AWS_TOPICARN", topic)
    monkeypatch.setenv("AWS_ENDPOINTURL", sns_server.endpoint)
    monkeypatch.setenv("AWS_ACCESSKEYID", "testing")
    monkeypatch.setenv("AWS_SECRETACCESSKEY", SNS_SECRET)
    monkeypatch.setenv("AWS_REGION", "sa-east-1")

    class Box:
        server = sns_server
        topic_arn = topic

        def received(self):
            return [(m["Subject"], m["Message"]) for m in sns_server.received(queue)]

    return Box()
