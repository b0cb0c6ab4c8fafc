"""Any task of ``s3_export`` on any worker: no task needs a file, process or memory an earlier task
left on its host. Each task runs as on another host (its own HOME, TMPDIR and EXPORT_LOCALDIRECTORY,
wiped after the task), fed only what XCom carries. Real MariaDB and SeaweedFS S3."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from meccano.export import chain, context
from meccano.export.ledger import Ledger
from meccano.settings.config import load_settings
from tests.support.export import (
    DAYS,
    WorkerDied,
    as_tuple,
    day_facts,
    db_rows,
    insert_facts,
    ledger_entries,
    run_chain,
    seed_export,
)

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "meccano_plugins" / "s3_export:1.0"
NOW = "2024-03-10T02:00:00+00:00"


class Host:
    """A worker on its own host: its own HOME, TMPDIR and EXPORT_LOCALDIRECTORY."""

    def __init__(self, base: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.dir = base / name
        self.local = self.dir / "export"
        for sub in ("home", "tmp", "export"):
            (self.dir / sub).mkdir(parents=True)
        monkeypatch.setenv("HOME", str(self.dir / "home"))
        monkeypatch.setenv("TMPDIR", str(self.dir / "tmp"))
        monkeypatch.setenv("EXPORT_LOCALDIRECTORY", str(self.local))
        tempfile.tempdir = None  # the next gettempdir() reads TMPDIR again

    def files(self) -> list[str]:
        return sorted(str(p.relative_to(self.dir)) for p in self.dir.rglob("*") if p.is_file())

    def wipe(self) -> None:
        shutil.rmtree(self.dir)


class TaskContext:
    """What the native engine hands a task (see meccano.contract.context.PluginContext), XCom as JSON."""

    def __init__(self, db, xcom: dict[str, object], run_id: str) -> None:
        from datetime import datetime

        self.settings = load_settings()
        self.iotdb = db
        self.params = {"dry_run": False}
        self.run_id = run_id
        self.data_interval_end = datetime.fromisoformat(NOW)
        self.log = logging.getLogger("meccano.plugin.s3_export")
        self.airflow_context: dict[str, object] = {}  # no outlet events outside Airflow
        self._xcom = xcom

    def xcom_pull(self, task_id: str):
        return json.loads(self._xcom[task_id])


def _plugin():
    from meccano.contract.manifest import load_plugin
    from meccano.plugins.native import load_native_module

    manifest = load_plugin(PLUGIN).manifest
    assert manifest is not None
    return manifest, load_native_module(manifest, manifest.tasks[0])


@pytest.fixture
def seeded(iotdb, s3_server, tmp_path, monkeypatch):
    seeded = seed_export(iotdb, s3_server, tmp_path, monkeypatch)
    return seeded.old_rows, seeded.recent_rows, seeded.reader


@pytest.mark.services
def test_every_task_runs_on_another_host_than_the_one_before(iotdb, seeded, tmp_path, monkeypatch):
    """Each task of the DAG on a fresh host whose disk is wiped afterwards: the run completes, rows are
    conserved, and no task leaves a file on its host."""
    old, recent, reader = seeded
    manifest, module = _plugin()
    xcom: dict[str, str] = {}
    for i, task in enumerate(manifest.tasks):
        host = Host(tmp_path / "hosts", f"worker{i}", monkeypatch)
        result = getattr(module, task)(TaskContext(iotdb, xcom, "scheduled__2024-03-10"))
        xcom[task] = json.dumps(result)  # what XCom keeps: JSON
        assert host.files() == [], f"{task} left files on its worker"
        host.wipe()
    assert reader.rows() == old  # every exported row once, in the target
    assert db_rows(iotdb) == recent  # rows in target + rows left == rows inserted
    assert {e.state for e in ledger_entries(iotdb)} == {"purged"}


@pytest.mark.services
@pytest.mark.parametrize("dies", ["mid_upload", "after_upload"])
def test_an_export_attempt_that_dies_is_retried_on_another_host(iotdb, seeded, tmp_path, monkeypatch, dies):
    """The worker dies inside the export task (half the parts uploaded, or all uploaded but not yet
    recorded as such); the retry lands on another host, exports again and the run completes."""
    from datetime import datetime

    from meccano.export import target

    old, recent, reader = seeded
    Host(tmp_path / "hosts", "a", monkeypatch)
    settings = load_settings()
    planned = json.loads(json.dumps(chain.plan_step(settings, iotdb, {}, "run1", datetime.fromisoformat(NOW))))
    real_put, real_upload = target.put_part, target.Target.upload_day
    calls = []

    def put_then_die(target_, local, remote, part, *streams):
        calls.append(remote)
        if len(calls) == 3:
            raise WorkerDied
        return real_put(target_, local, remote, part, *streams)

    def upload_then_die(*args, **kwargs):
        real_upload(*args, **kwargs)
        raise WorkerDied

    if dies == "mid_upload":
        monkeypatch.setattr(target, "put_part", put_then_die)
    else:
        monkeypatch.setattr(target.Target, "upload_day", upload_then_die)
    with pytest.raises(WorkerDied):
        chain.export_step(settings, iotdb, planned)
    monkeypatch.setattr(target, "put_part", real_put)
    monkeypatch.setattr(target.Target, "upload_day", real_upload)

    Host(tmp_path / "hosts", "b", monkeypatch)  # the retry and the rest of the run on another worker
    settings = load_settings()
    chain.export_step(settings, iotdb, planned)
    chain.verify_step(settings, iotdb, planned)
    chain.purge_step(settings, iotdb, planned)
    assert reader.rows() == old  # nothing lost, nothing twice, no stale object left by the dead attempt
    assert db_rows(iotdb) == recent


@pytest.mark.services
@pytest.mark.parametrize("dies", ["before_manifest", "after_manifest"])
def test_late_rows_of_a_purged_day_survive_a_retried_export_on_another_host(iotdb, seeded, tmp_path,
                                                                             monkeypatch, dies):
    """Reconcile mode (late rows of a purged day): the attempt dies after uploading its new parts (before or
    after the new manifest); the retry on another host starts from the same base and appends them once."""
    from datetime import datetime

    from meccano.export import target

    old, recent, reader = seeded
    when = datetime.fromisoformat(NOW)
    Host(tmp_path / "hosts", "a", monkeypatch)
    run_chain(load_settings(), iotdb, run_id="run1", when=when)
    late = day_facts(DAYS[0], 9, seed=4, offset=80_000)
    insert_facts(iotdb, late)
    settings = load_settings()
    planned = json.loads(json.dumps(chain.plan_step(settings, iotdb, {}, "run2", when)))
    assert [p["mode"] for p in planned["partitions"]] == ["reconcile"]
    real_manifest = target.put_manifest

    def manifest_then_die(target_, data, remote):
        if dies == "after_manifest":
            real_manifest(target_, data, remote)
        raise WorkerDied

    monkeypatch.setattr(target, "put_manifest", manifest_then_die)
    with pytest.raises(WorkerDied):
        chain.export_step(settings, iotdb, planned)
    monkeypatch.setattr(target, "put_manifest", real_manifest)
    assert Ledger(iotdb).get("Facts", DAYS[0]).run_id == "run1"  # the base is unchanged

    Host(tmp_path / "hosts", "b", monkeypatch)
    settings = load_settings()
    for step in (chain.export_step, chain.verify_step, chain.purge_step):
        step(settings, iotdb, planned)
    assert reader.rows() == old + Counter(as_tuple(r) for r in late)
    assert db_rows(iotdb) == recent


# --- the local work folder ---------------------------------------------------------------------

def _settings_with_local(local: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EXPORT_LOCALDIRECTORY", str(local))
    return load_settings()


def test_a_crashed_attempt_s_files_are_removed_by_the_next_attempt_on_that_host(tmp_path, monkeypatch):
    """A task process SIGKILLed while it holds part files: the next attempt of the run on the same host
    starts empty, and another run's attempt sweeps what dead attempts left, inside the staging folder only."""
    local = tmp_path / "local"
    settings = _settings_with_local(local, monkeypatch)
    script = textwrap.dedent("""
        import logging, os, signal
        from meccano.settings.config import load_settings
        from meccano.export.context import work_folder
        with work_folder(load_settings(), "run-killed", logging.getLogger("t")) as folder:
            (folder / "Facts" / "2024-03-01").mkdir(parents=True)
            (folder / "Facts" / "2024-03-01" / "part-00000.csv.gz").write_bytes(b"x" * 1000)
            print(folder, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'include'}:{ROOT}"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == -9
    killed = Path(done.stdout.strip())
    assert (killed / "Facts" / "2024-03-01" / "part-00000.csv.gz").is_file()  # left behind by the dead attempt

    root = context.staging_root(settings)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not the export's")
    (root / "link-out").symlink_to(outside)  # never followed
    (root / "legacy-run" / "Facts").mkdir(parents=True)  # the old layout, without a lock, hours old
    os.utime(root / "legacy-run", (1, 1))
    (root / "legacy-live" / "Facts").mkdir(parents=True)  # the same, just written: maybe an older version's live run
    live = context._lock(root / "live-run.lock")  # a live attempt of another run on this host
    (root / "live-run").mkdir()
    log = logging.getLogger("test")
    try:
        with context.work_folder(settings, "run-killed", log) as folder:  # the retry, same host
            assert folder == killed and list(folder.iterdir()) == []
            assert not (root / "legacy-run").exists() and not (root / "link-out").exists()
            assert (root / "live-run").is_dir()  # its lock is held: untouched
            (folder / "part-00000.csv.gz").write_bytes(b"y")
        assert sorted(p.name for p in root.iterdir()) == ["legacy-live", "live-run", "live-run.lock"]
    finally:
        os.close(live)
    os.utime(root / "legacy-live", (1, 1))
    assert (outside / "keep.txt").read_text() == "not the export's"
    with context.work_folder(settings, "next-run", log):  # the live attempt ended without cleaning up
        assert sorted(p.name for p in root.iterdir()) == ["next-run", "next-run.lock"]
    assert list(root.iterdir()) == []


def test_the_sweep_is_bounded(tmp_path, monkeypatch):
    settings = _settings_with_local(tmp_path / "local", monkeypatch)
    root = context.staging_root(settings)
    for i in range(context.SWEEP_LIMIT + 50):
        (root / f"dead-{i}").mkdir(parents=True)
        os.utime(root / f"dead-{i}", (1, 1))
    removed = context.sweep(root, "mine", logging.getLogger("test"))
    assert removed == context.SWEEP_LIMIT
    assert len(list(root.iterdir())) == 50


def test_a_second_live_attempt_of_the_same_run_on_one_host_is_refused_not_overwritten(tmp_path, monkeypatch):
    from meccano.errors import ExportError

    settings = _settings_with_local(tmp_path / "local", monkeypatch)
    root = context.staging_root(settings)
    root.mkdir(parents=True, exist_ok=True)  # staging_root makes it (private)
    held = context._lock(root / "run-1.lock")
    try:
        with pytest.raises(ExportError, match="another export attempt of this run still holds"):
            context._lock(root / "run-1.lock", wait=0.5)
    finally:
        os.close(held)
